//! Limits against hostile peers that only show on a real socket: datagrams
//! longer than the receive slot (`runtime::socket::MAX_DATAGRAM`, what the
//! crawl cores' `recvmmsg` batches hold) sent to a running crawl. Every packet
//! stays on 127.0.0.0/8.

mod crawl_common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crawl_common::{loopback_options, wait_for, SwarmChild};
use trawl_engine::codec::krpc::{encode_query, Kind, Message, Query};
use trawl_engine::crawl::CrawlConfig;
use trawl_engine::runtime::crawl::Crawler;
use trawl_engine::runtime::socket::MAX_DATAGRAM;

/// Largest UDP payload over IPv4.
const MAX_UDP_PAYLOAD: usize = 65_507;

fn ping(tid: &[u8]) -> Vec<u8> {
    let mut q = Vec::new();
    encode_query(&mut q, tid, &Query::Ping { id: &[3; 20] }, false, None);
    q
}

/// A ping that is valid as a whole, `len` bytes long: the padding is the value
/// of an unknown key `z`, placed last, so any cut leaves an unclosed dict.
fn padded_ping(tid: &[u8], len: usize) -> Vec<u8> {
    let mut q = ping(tid);
    assert_eq!(q.pop(), Some(b'e'));
    let head = q.len() + "1:z".len() + 1; // + the closing `e`
                                          // The string's length prefix grows with the padding: solve for it.
    let mut pad = len - head;
    while head + pad.to_string().len() + 1 + pad > len {
        pad -= 1;
    }
    q.extend_from_slice(format!("1:z{pad}:").as_bytes());
    q.resize(q.len() + pad, b'x');
    q.push(b'e');
    assert_eq!(q.len(), len);
    assert!(Message::decode(&q).is_ok(), "the whole datagram is a valid query");
    q
}

/// Answers to `tid` that arrive at `sock` within `wait`.
fn answered(sock: &UdpSocket, tid: &[u8], wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            return false;
        };
        if let Ok(m) = Message::decode(&buf[..n]) {
            if m.transaction_id == tid && matches!(m.kind, Kind::Response(_)) {
                return true;
            }
        }
    }
    false
}

/// Over-long datagrams, valid KRPC if read whole, reach an answering crawl in
/// the middle of a swarm crawl: each is cut at the receive slot, fails to
/// decode and is counted, nothing answers them, and the crawl goes on finding
/// hashes and answering well-formed queries.
#[test]
fn datagrams_longer_than_a_slot_are_rejected_and_the_crawl_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // More torrents than one pass over the nodes finds, and short intervals,
    // so new hashes keep coming for as long as the crawl runs.
    let swarm = SwarmChild::start(&dir.path().join("manifest.jsonl"), 2_000, 100_000, 4);
    let mut opts = loopback_options(&dir.path().join("db"), (0..4).map(|i| swarm.node(i)).collect());
    opts.cores = 1;
    opts.read_only = false;
    opts.crawl = CrawlConfig {
        productive_resample: Duration::from_secs(1),
        empty_backoff: Duration::from_secs(5),
        ..CrawlConfig::default()
    };
    let crawler = Crawler::start(opts).unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], crawler.local_v4().port()));
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();

    let before = wait_for(&crawler, Duration::from_secs(10), |s| s.total(|c| c.new_hashes) > 0);
    assert!(before.total(|c| c.new_hashes) > 0, "the crawl got going: {before:?}");
    peer.send_to(&ping(b"p0"), to).unwrap();
    assert!(
        answered(&peer, b"p0", Duration::from_secs(2)),
        "a normal ping is answered"
    );

    let lens = [MAX_DATAGRAM + 1, 4096, 60_000, MAX_UDP_PAYLOAD];
    let errors_before = crawler.snapshot().total(|c| c.decode_errors);
    for (i, &len) in lens.iter().enumerate() {
        let tid = [b'o', i as u8];
        assert_eq!(peer.send_to(&padded_ping(&tid, len), to).unwrap(), len);
        assert!(
            !answered(&peer, &tid, Duration::from_millis(300)),
            "a {len}-byte query was answered"
        );
    }
    let rejected = wait_for(&crawler, Duration::from_secs(2), |s| {
        s.total(|c| c.decode_errors) >= errors_before + lens.len() as u64
    });
    assert_eq!(
        rejected.total(|c| c.decode_errors) - errors_before,
        lens.len() as u64,
        "each over-long datagram is one decode error"
    );
    // A query exactly the slot's size is still whole, and answered.
    peer.send_to(&padded_ping(b"p1", MAX_DATAGRAM), to).unwrap();
    assert!(
        answered(&peer, b"p1", Duration::from_secs(2)),
        "a slot-sized ping is answered"
    );
    // Cut at the slot, this one would be a whole ping: it must not count as one.
    let mut whole_head = padded_ping(b"p2", MAX_DATAGRAM);
    whole_head.resize(60_000, b'j');
    peer.send_to(&whole_head, to).unwrap();
    assert!(
        !answered(&peer, b"p2", Duration::from_millis(500)),
        "a datagram whose first slot is a whole query was answered"
    );
    let s = wait_for(&crawler, Duration::from_secs(2), |s| {
        s.total(|c| c.decode_errors) > errors_before + lens.len() as u64
    });
    assert_eq!(s.total(|c| c.decode_errors) - errors_before, lens.len() as u64 + 1);

    let found = rejected.total(|c| c.new_hashes);
    let after = wait_for(&crawler, Duration::from_secs(10), |s| s.total(|c| c.new_hashes) > found);
    let last = crawler.shutdown();
    assert!(after.total(|c| c.new_hashes) > found, "the crawl goes on: {after:?}");
    assert_eq!(last.total(|c| c.recv_errors), 0);
    drop(swarm);
}
