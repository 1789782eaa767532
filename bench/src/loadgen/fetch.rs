//! A blocking BEP 9 client that verifies SHA-1 ([`fetch_metadata`]), and the
//! pool of them the fetch benchmarks compare against.

use super::*;

/// Why a metadata fetch failed.
#[derive(Debug)]
pub enum FetchError {
    Io(io::Error),
    Wire(wire::Error),
    NoExtensions,
    NoMetadataSupport,
    Rejected,
    /// The assembled info dict's SHA-1 is not the infohash.
    HashMismatch,
    BadPiece,
}

impl From<io::Error> for FetchError {
    fn from(e: io::Error) -> Self {
        FetchError::Io(e)
    }
}

impl From<wire::Error> for FetchError {
    fn from(e: wire::Error) -> Self {
        FetchError::Wire(e)
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for FetchError {}

const OUR_UT_METADATA: u8 = wire::OUR_UT_METADATA_ID;

/// Fetches the info dict of `info_hash` from `peer` over BEP 9 and checks its SHA-1.
pub fn fetch_metadata(peer: SocketAddrV4, info_hash: &[u8; 20], timeout: Duration) -> Result<Vec<u8>, FetchError> {
    fetch_metadata_within(peer, info_hash, timeout, timeout)
}

/// [`fetch_metadata`] with its own dial timeout; `timeout` bounds each read and write.
pub fn fetch_metadata_within(
    peer: SocketAddrV4,
    info_hash: &[u8; 20],
    dial: Duration,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(peer), dial)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut out = Vec::with_capacity(256);
    wire::write_handshake(&mut out, info_hash, b"-TB0001-trawl-bench-");
    wire::write_ext_handshake(&mut out, OUR_UT_METADATA, None, None);
    stream.write_all(&out)?;

    let mut inbuf: Vec<u8> = Vec::with_capacity(32 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    let mut fill = |stream: &mut TcpStream, inbuf: &mut Vec<u8>| -> Result<(), FetchError> {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(FetchError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        inbuf.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    // Their handshake.
    let consumed = loop {
        match Handshake::parse(&inbuf)? {
            Parse::NeedMore(_) => fill(&mut stream, &mut inbuf)?,
            Parse::Done { item, consumed } => {
                if !item.supports_extensions() {
                    return Err(FetchError::NoExtensions);
                }
                break consumed;
            }
        }
    };
    inbuf.drain(..consumed);
    let mut their_id = None;
    let mut dict: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let mut received_pieces = 0u32;
    loop {
        let (action, consumed) = match PeerMessage::parse(&inbuf, wire::DEFAULT_MAX_MESSAGE_LEN)? {
            Parse::NeedMore(_) => {
                fill(&mut stream, &mut inbuf)?;
                continue;
            }
            Parse::Done { item, consumed } => (item_action(item)?, consumed),
        };
        inbuf.drain(..consumed);
        match action {
            PeerAction::Ignore => {}
            PeerAction::Handshake { ut_metadata, size } => {
                let id = ut_metadata.ok_or(FetchError::NoMetadataSupport)?;
                let size = size.ok_or(FetchError::NoMetadataSupport)?;
                their_id = Some(id);
                total = size;
                dict = vec![0u8; size];
                out.clear();
                for piece in 0..wire::piece_count(size) {
                    wire::write_metadata_request(&mut out, id, piece);
                }
                stream.write_all(&out)?;
            }
            PeerAction::Reject => return Err(FetchError::Rejected),
            PeerAction::Data {
                piece,
                total_size,
                data,
            } => {
                if their_id.is_none() || total_size != total {
                    return Err(FetchError::BadPiece);
                }
                let range = wire::piece_range(total, piece).ok_or(FetchError::BadPiece)?;
                if range.len() != data.len() {
                    return Err(FetchError::BadPiece);
                }
                dict[range].copy_from_slice(&data);
                received_pieces += 1;
                if received_pieces == wire::piece_count(total) {
                    let digest: [u8; 20] = Sha1::digest(&dict).into();
                    return if &digest == info_hash {
                        Ok(dict)
                    } else {
                        Err(FetchError::HashMismatch)
                    };
                }
            }
        }
    }
}

enum PeerAction {
    Ignore,
    Handshake {
        ut_metadata: Option<u8>,
        size: Option<usize>,
    },
    Reject,
    Data {
        piece: u32,
        total_size: usize,
        data: Vec<u8>,
    },
}

fn item_action(msg: PeerMessage<'_>) -> Result<PeerAction, FetchError> {
    Ok(match msg {
        PeerMessage::Extended {
            ext_id: wire::EXT_HANDSHAKE_ID,
            payload,
        } => {
            let hs = ExtHandshake::parse(payload)?;
            PeerAction::Handshake {
                ut_metadata: hs.ut_metadata,
                size: hs.metadata_size,
            }
        }
        PeerMessage::Extended {
            ext_id: OUR_UT_METADATA,
            payload,
        } => match MetadataMsg::parse(payload)? {
            MetadataMsg::Reject { .. } => PeerAction::Reject,
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => PeerAction::Data {
                piece,
                total_size,
                data: data.to_vec(),
            },
            MetadataMsg::Request { .. } => PeerAction::Ignore,
        },
        _ => PeerAction::Ignore,
    })
}

/// Outcomes of the metadata fetchers, shared by their threads.
#[derive(Debug, Default)]
pub struct FetchCounters {
    pub fetched: AtomicU64,
    pub hash_mismatch: AtomicU64,
    pub rejected: AtomicU64,
    pub timed_out: AtomicU64,
    pub failed: AtomicU64,
    /// Jobs whose every peer failed.
    pub gave_up: AtomicU64,
    pub bytes: AtomicU64,
}

/// Summary of [`FetchCounters`].
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct FetchSummary {
    pub fetched: u64,
    pub hash_mismatch: u64,
    pub rejected: u64,
    pub timed_out: u64,
    pub failed: u64,
    pub gave_up: u64,
    pub bytes: u64,
}

impl FetchCounters {
    pub fn summary(&self) -> FetchSummary {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FetchSummary {
            fetched: l(&self.fetched),
            hash_mismatch: l(&self.hash_mismatch),
            rejected: l(&self.rejected),
            timed_out: l(&self.timed_out),
            failed: l(&self.failed),
            gave_up: l(&self.gave_up),
            bytes: l(&self.bytes),
        }
    }
}

/// Runs one fetcher thread: tries each job's peers in turn until one serves a
/// verified info dict. Stops when `jobs` ends.
pub fn fetcher(jobs: impl IntoIterator<Item = FetchJob>, counters: Arc<FetchCounters>, timeout: Duration) {
    for job in jobs {
        let mut ok = false;
        for &peer in &job.peers {
            match fetch_metadata(peer, &job.info_hash, timeout) {
                Ok(dict) => {
                    counters.fetched.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(dict.len() as u64, Ordering::Relaxed);
                    ok = true;
                    break;
                }
                Err(FetchError::HashMismatch) => counters.hash_mismatch.fetch_add(1, Ordering::Relaxed),
                Err(FetchError::Rejected) => counters.rejected.fetch_add(1, Ordering::Relaxed),
                Err(FetchError::Io(e)) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    counters.timed_out.fetch_add(1, Ordering::Relaxed)
                }
                Err(_) => counters.failed.fetch_add(1, Ordering::Relaxed),
            };
        }
        if !ok {
            counters.gave_up.fetch_add(1, Ordering::Relaxed);
        }
    }
}
