//! Shared by the metadata fetcher tests: a temp store with its writer, the
//! fetcher on its own glommio executor, and in-process BEP 9 peers (good and
//! hostile) on std TCP listeners bound to 127.0.0.x addresses.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
use trawl_engine::metadata::exchange::ExchangeConfig;
use trawl_engine::metadata::wire::{self, ExtHandshake, Message, MetadataMsg, Parse};
use trawl_engine::runtime::fetch::{spawn_thread, FetchConfig, FetchCounters, FetcherContext, FetcherThread};
use trawl_storage::{
    unix_now, Batch, InfoHash, PeersFound, StagingEntry, Store, StoreOptions, TorrentRecord, Writer, WriterOptions,
};

/// A store, its writer and a running fetcher.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub writer: Option<Writer>,
    pub counters: Arc<FetchCounters>,
    stop: Arc<AtomicBool>,
    fetcher: Option<FetcherThread>,
}

/// Limits short enough for tests: a stalling peer costs one second.
pub fn test_config() -> FetchConfig {
    FetchConfig {
        concurrency: 16,
        exchange: ExchangeConfig {
            dial_timeout: Duration::from_millis(500),
            deadline: Duration::from_millis(1000),
            ..ExchangeConfig::default()
        },
        idle_poll: Duration::from_millis(20),
        flush_interval: Duration::from_millis(20),
        ..FetchConfig::default()
    }
}

impl Harness {
    pub fn start(config: FetchConfig, allow_loopback: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            sync_writes: false,
            ..StoreOptions::default()
        };
        let store = Arc::new(Store::open(dir.path(), &opts).unwrap());
        let writer = Writer::spawn(
            store.clone(),
            WriterOptions {
                expected_infohashes: 1024,
                flush_interval: Duration::from_millis(10),
                ..WriterOptions::default()
            },
        )
        .unwrap();
        let counters = Arc::new(FetchCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = FetcherContext {
            core: 0,
            cores: 1,
            store: store.clone(),
            writer: writer.handle(),
            config,
            counters: counters.clone(),
            stop: stop.clone(),
            paused: Arc::new(AtomicBool::new(false)),
            allow_loopback,
            lookups: None,
        };
        let fetcher = spawn_thread(ctx, None).unwrap();
        Harness {
            dir,
            store,
            writer: Some(writer),
            counters,
            stop,
            fetcher: Some(fetcher),
        }
    }

    /// Queues `hash` with `peers` (the last one is tried first).
    pub fn enqueue(&self, hash: InfoHash, peers: &[SocketAddr]) {
        let batch = Batch {
            peers: vec![PeersFound {
                info_hash: hash,
                peers: peers.to_vec(),
                at: unix_now(),
            }],
            ..Batch::default()
        };
        self.writer.as_ref().unwrap().handle().send(batch).unwrap();
    }

    /// Waits until `hash` is stored as a torrent.
    pub fn wait_torrent(&self, hash: &InfoHash, within: Duration) -> TorrentRecord {
        wait_for(within, || self.store.torrent(hash).unwrap()).unwrap_or_else(|| {
            panic!(
                "no torrent stored within {within:?}; counters {:?}",
                self.counters.snapshot()
            )
        })
    }

    /// Waits until `hash` has failed at least once.
    pub fn wait_failure(&self, hash: &InfoHash, within: Duration) -> StagingEntry {
        wait_for(within, || {
            self.store.staging_entry(hash).unwrap().filter(|e| e.attempts > 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "no failure recorded within {within:?}; counters {:?}",
                self.counters.snapshot()
            )
        })
    }

    pub fn failed(&self, kind: &str) -> u64 {
        let snap = self.counters.snapshot();
        snap.failed.iter().find(|(k, _)| *k == kind).map_or(0, |&(_, n)| n)
    }

    /// Stops the fetcher and the writer.
    pub fn stop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(f) = self.fetcher.take() {
            f.join().unwrap();
        }
        if let Some(w) = self.writer.take() {
            w.shutdown();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A small real-format multi-file info dict and its infohash.
pub fn sample_info(name: &str) -> (Vec<u8>, InfoHash) {
    let name_len = name.len();
    let d = format!(
        "d5:filesld6:lengthi734003200e4:pathl9:movie.mkveed6:lengthi51200e4:pathl9:movie.srteee4:name{name_len}:{name}12:piece lengthi4194304e6:pieces40:{}e",
        "p".repeat(40)
    )
    .into_bytes();
    let h: InfoHash = Sha1::digest(&d).into();
    (d, h)
}

/// How an in-process peer behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Good,
    NoExtension,
    NoUtMetadata,
    /// Declares a `metadata_size` above the cap.
    TooLarge,
    /// Serves bytes that do not hash to the infohash.
    WrongPiece,
    /// Declares a frame longer than the message cap.
    Oversized,
    /// Answers the handshake, then says nothing.
    Stall,
    Reject,
    /// Serves the right bytes, one every 50 ms.
    SlowDrip,
    /// Answers with bytes that are not BitTorrent.
    Garbage,
    /// Closes right after its handshake.
    HangUp,
    /// Nothing listens: the connect is refused.
    Absent,
}

/// An in-process peer serving `info` on `ip` (port chosen by the kernel).
pub fn spawn_peer(ip: Ipv4Addr, behaviour: Behaviour, info: Vec<u8>) -> SocketAddr {
    if behaviour == Behaviour::Absent {
        return closed_port(ip);
    }
    let listener = TcpListener::bind(SocketAddrV4::new(ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let info = Arc::new(info);
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let info = info.clone();
            thread::spawn(move || {
                let _ = serve(conn, behaviour, &info);
            });
        }
    });
    addr
}

/// A port on `ip` where nothing listens.
pub fn closed_port(ip: Ipv4Addr) -> SocketAddr {
    let l = TcpListener::bind(SocketAddrV4::new(ip, 0)).unwrap();
    l.local_addr().unwrap()
}

fn serve(mut s: TcpStream, behaviour: Behaviour, info: &[u8]) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut hs = [0u8; wire::HANDSHAKE_LEN];
    s.read_exact(&mut hs)?;
    let Ok(Parse::Done { item, .. }) = wire::Handshake::parse(&hs) else {
        return Ok(());
    };
    let info_hash = *item.info_hash;
    let mut out = Vec::new();
    match behaviour {
        Behaviour::Garbage => {
            s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff\xfe garbage")?;
            thread::sleep(Duration::from_millis(200));
            return Ok(());
        }
        Behaviour::Stall => {
            thread::sleep(Duration::from_secs(3));
            return Ok(());
        }
        _ => {}
    }
    wire::write_handshake(&mut out, &info_hash, &[0x42; 20]);
    if behaviour == Behaviour::NoExtension {
        out[20 + wire::EXTENSION_BYTE] = 0;
    }
    s.write_all(&out)?;
    out.clear();
    match behaviour {
        Behaviour::HangUp => return Ok(()),
        Behaviour::NoExtension => {
            thread::sleep(Duration::from_millis(500));
            return Ok(());
        }
        Behaviour::Oversized => {
            s.write_all(&(wire::DEFAULT_MAX_MESSAGE_LEN as u32 + 1).to_be_bytes())?;
            s.write_all(&[0; 1024])?;
            thread::sleep(Duration::from_millis(500));
            return Ok(());
        }
        _ => {}
    }
    // Real peers announce noise before the extended handshake.
    s.write_all(&[0, 0, 0, 3, 5, 0xff, 0xf0, 0, 0, 0, 1, 1, 0, 0, 0, 0])?;
    const OUR_UT: u8 = 2;
    let (ut, size) = match behaviour {
        Behaviour::NoUtMetadata => (0, info.len()),
        Behaviour::TooLarge => (OUR_UT, 20 << 20),
        _ => (OUR_UT, info.len()),
    };
    wire::write_ext_handshake(&mut out, ut, Some(size), Some(b"hostile-test/1.0"));
    s.write_all(&out)?;
    out.clear();

    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut their_ut = None;
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Parse::Done { item, consumed }) = Message::parse(&buf, wire::DEFAULT_MAX_MESSAGE_LEN) {
            match item {
                Message::Extended { ext_id: 0, payload } => {
                    their_ut = ExtHandshake::parse(payload).ok().and_then(|h| h.ut_metadata);
                }
                Message::Extended {
                    ext_id: OUR_UT,
                    payload,
                } => {
                    if let (Ok(MetadataMsg::Request { piece }), Some(ut)) = (MetadataMsg::parse(payload), their_ut) {
                        answer(&mut s, behaviour, info, ut, piece)?;
                    }
                }
                _ => {}
            }
            buf.drain(..consumed);
        }
    }
}

fn answer(s: &mut TcpStream, behaviour: Behaviour, info: &[u8], ut: u8, piece: u32) -> std::io::Result<()> {
    let mut out = Vec::new();
    let Some(range) = wire::piece_range(info.len(), piece) else {
        wire::write_metadata_reject(&mut out, ut, piece);
        return s.write_all(&out);
    };
    match behaviour {
        Behaviour::Reject => wire::write_metadata_reject(&mut out, ut, piece),
        Behaviour::WrongPiece => {
            let mut wrong = info[range].to_vec();
            wrong[0] ^= 0x20;
            wire::write_metadata_data(&mut out, ut, piece, info.len(), &wrong);
        }
        _ => wire::write_metadata_data(&mut out, ut, piece, info.len(), &info[range]),
    }
    if behaviour == Behaviour::SlowDrip {
        for b in &out {
            s.write_all(std::slice::from_ref(b))?;
            thread::sleep(Duration::from_millis(50));
        }
        return Ok(());
    }
    s.write_all(&out)
}
