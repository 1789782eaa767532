//! A libtorrent DHT node (Debian's python3-libtorrent driven by
//! scripts/lt_node.py) as a child process on a loopback address, for the
//! interop and crawl tests. Killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

/// A libtorrent node process; killed when dropped.
pub struct LtNode {
    child: Child,
    lines: Receiver<serde_json::Value>,
    pub addr: SocketAddr,
}

impl LtNode {
    pub fn start(ip: [u8; 4], extra: &[String]) -> LtNode {
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
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
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
