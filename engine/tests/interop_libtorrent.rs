//! Loopback interop with libtorrent (Debian's python3-libtorrent, driven by
//! scripts/lt_node.py): our lookup finds a peer announced through libtorrent
//! nodes, and libtorrent's lookup finds a peer announced through ours. All
//! traffic stays on 127.0.0.0/8; every process is killed when its test ends.

mod interop_common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use interop_common::{info_hash, trawl_finds, trawl_network_with_announce, trawl_node};

/// A libtorrent node process; killed when dropped.
struct LtNode {
    child: Child,
    lines: Receiver<serde_json::Value>,
    addr: SocketAddr,
}

impl LtNode {
    fn start(ip: [u8; 4], extra: &[String]) -> LtNode {
        // A port free for UDP on this address; libtorrent also opens TCP on it.
        let port = UdpSocket::bind(SocketAddr::from((ip, 0)))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from((ip, port));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lt_node.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args([
                "--bind",
                &addr.ip().to_string(),
                "--port",
                &port.to_string(),
                "--duration",
                "40",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run /usr/bin/python3 scripts/lt_node.py (needs python3-libtorrent)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let node = LtNode { child, lines, addr };
        node.wait_for(Duration::from_secs(10), |v| v["event"] == "ready")
            .unwrap_or_else(|| panic!("libtorrent node on {addr} did not start"));
        node
    }

    /// The first output line matching `pred` within `timeout`.
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        while let Ok(v) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if pred(&v) {
                return Some(v);
            }
        }
        None
    }
}

impl Drop for LtNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn trawl_lookup_finds_a_peer_announced_through_libtorrent() {
    let hub = LtNode::start([127, 71, 0, 1], &[]);
    let ih = info_hash(3);
    let announcer = LtNode::start(
        [127, 71, 0, 2],
        &[
            "--bootstrap".into(),
            hub.addr.to_string(),
            "--announce".into(),
            hex(&ih),
        ],
    );
    let _others: Vec<_> = (3..5u8)
        .map(|i| LtNode::start([127, 71, 0, i], &["--bootstrap".into(), hub.addr.to_string()]))
        .collect();

    let ours = trawl_node([127, 71, 0, 9], &[hub.addr], false, 31);
    // libtorrent announces its own listen port for the torrent.
    let want = announcer.addr;
    let seen = trawl_finds(&ours, ih, want, Duration::from_secs(20));
    assert!(
        seen.contains(&want),
        "trawl's lookup saw {seen:?}, not the peer {want} announced via libtorrent"
    );
}

#[test]
fn libtorrent_lookup_finds_a_peer_announced_through_trawl() {
    let ih = info_hash(4);
    let (_nodes, hub_addr) = trawl_network_with_announce(72, 41, ih, 45_004);

    let want = SocketAddr::from(([127, 72, 0, 9], 45_004)).to_string();
    let looker = LtNode::start(
        [127, 72, 0, 10],
        &["--bootstrap".into(), hub_addr.to_string(), "--lookup".into(), hex(&ih)],
    );
    let found = looker.wait_for(Duration::from_secs(20), |v| {
        v["event"] == "peers"
            && v["peers"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x == &want.as_str()))
    });
    assert!(
        found.is_some(),
        "libtorrent's lookup never reported the peer {want} announced via trawl"
    );
}
