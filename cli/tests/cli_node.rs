//! The real `trawl` binary's `node`, `announce` and `lookup` subcommands on
//! loopback: a node answers, an announce through it lands, a lookup through it
//! finds the announced peer; and bad input fails with one clear line and the
//! right exit code, over IPv4 and IPv6. Always a loopback `--bootstrap` (127.x
//! or ::1) and `--allow-loopback`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TRAWL: &str = env!("CARGO_BIN_EXE_trawl");
const IH: &str = "c0ffee00112233445566778899aabbccddeeff01";

fn trawl(args: &[&str]) -> Output {
    Command::new(TRAWL)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run trawl")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The body of `GET /metrics` at `addr`.
fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// A `trawl node` child killed (if still running) when dropped.
struct NodeProc(Child);

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn node_announce_lookup_round_trip() {
    round_trip(["127.81.0.1", "127.81.0.2", "127.81.0.3"], "127.81.0.2:46001");
}

/// The same over IPv6: every command bootstraps and answers on `::1` (a node
/// speaks the family of its `--bind`).
#[test]
fn node_announce_lookup_round_trip_over_ipv6() {
    round_trip(["::1", "::1", "::1"], "[::1]:46001");
}

/// A node on `binds[0]`; an announce of port 46001 from `binds[1]` and a
/// lookup from `binds[2]` through it; the lookup prints `peer`.
fn round_trip(binds: [&str; 3], peer: &str) {
    let metrics = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut node = NodeProc(
        Command::new(TRAWL)
            .args(["node", "--port", "0", "--bind", binds[0], "--allow-loopback"])
            .args(["--metrics", &metrics.to_string()])
            .args([
                "--bootstrap",
                &SocketAddr::new(binds[0].parse().unwrap(), 9).to_string(),
            ])
            .args(["--duration", "60", "--stats-every", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(node.0.stdout.take().unwrap()).lines();
    let ready: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(ready["event"], "ready");
    let addr = ready["addr"].as_str().unwrap().to_string();
    let node_addr: SocketAddr = addr.parse().unwrap();
    assert_eq!(node_addr.ip(), binds[0].parse::<std::net::IpAddr>().unwrap(), "{addr}");
    assert_eq!(ready["id"].as_str().unwrap().len(), 40);

    let announce = trawl(&[
        "announce",
        IH,
        "--port",
        "46001",
        "--bind",
        binds[1],
        "--allow-loopback",
        "--bootstrap",
        &addr,
        "--timeout",
        "10",
    ]);
    assert!(
        announce.status.success(),
        "announce failed: {:?}",
        stderr_lines(&announce)
    );
    let line: serde_json::Value = serde_json::from_slice(&announce.stdout).unwrap();
    assert_eq!(line["info_hash"], IH);
    assert!(line["announced_to"].as_u64().unwrap() >= 1, "{line}");

    let lookup = trawl(&[
        "lookup",
        IH,
        "--bind",
        binds[2],
        "--allow-loopback",
        "--bootstrap",
        &addr,
        "--timeout",
        "10",
    ]);
    assert!(lookup.status.success(), "lookup failed: {:?}", stderr_lines(&lookup));
    let peers: Vec<&str> = std::str::from_utf8(&lookup.stdout).unwrap().lines().collect();
    assert!(peers.contains(&peer), "lookup printed {peers:?}");

    // The metrics endpoint shows the same node: up, answering, holding the announce.
    let text = scrape(metrics);
    let value = |key: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.split_once(' ').is_some_and(|(k, _)| k == key))
            .unwrap_or_else(|| panic!("{key} missing from:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("trawl_node_up"), 1.0);
    assert!(
        value("trawl_node_queries_answered_total{outcome=\"reply\"}") >= 2.0,
        "{text}"
    );
    assert_eq!(value("trawl_node_peer_store_infohashes"), 1.0, "{text}");
    assert!(value("trawl_node_datagrams_total{direction=\"in\"}") >= 2.0, "{text}");
    assert!(
        text.contains("trawl_node_dropped_total{reason=\"rate_limited\"}"),
        "{text}"
    );

    // The node counts what it answered, and stops cleanly on SIGTERM.
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    assert_eq!(unsafe { libc::kill(node.0.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = serde_json::Value::Null;
    for line in lines.map_while(Result::ok) {
        last = serde_json::from_str(&line).unwrap();
        if last["event"] == "stopped" || Instant::now() > deadline {
            break;
        }
    }
    assert_eq!(last["event"], "stopped", "{last}");
    assert!(last["reason"].as_str().unwrap().starts_with("signal"), "{last}");
    assert!(last["queries_answered"].as_u64().unwrap() >= 2, "{last}");
    assert!(node.0.wait().unwrap().success());
}

#[test]
fn bad_infohash_is_a_usage_error() {
    for bad in ["xyz", "c0ffee", "g0ffee00112233445566778899aabbccddeeff01"] {
        let out = trawl(&["lookup", bad, "--allow-loopback", "--bootstrap", "127.81.1.1:9"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {:?}", stderr_lines(&out));
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("infohash"), "{lines:?}");
    }
}

#[test]
fn bad_bootstrap_address_is_a_usage_error() {
    for bad in ["nonsense", "127.0.0.1:99999", "127.0.0.1"] {
        let out = trawl(&["announce", IH, "--port", "6881", "--allow-loopback", "--bootstrap", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {:?}", stderr_lines(&out));
        assert_eq!(stderr_lines(&out).len(), 1, "{:?}", stderr_lines(&out));
    }
    let out = trawl(&[
        "node",
        "--bind",
        "not-an-ip",
        "--allow-loopback",
        "--bootstrap",
        "127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// `trawl node` bound to `bind:port` for at most 5 s, with a dead bootstrap.
fn node_on(bind: &str, port: &str) -> Output {
    let args = ["--bind", bind, "--port", port, "--allow-loopback", "--duration", "5"];
    trawl(&[&["node", "--bootstrap", "127.81.2.1:9"][..], &args].concat())
}

#[test]
fn port_in_use_fails_with_one_line() {
    let taken = UdpSocket::bind("127.81.2.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = node_on("127.81.2.1", &port);
    assert_eq!(out.status.code(), Some(4), "{:?}", stderr_lines(&out));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("in use"), "{lines:?}");
    // The cause is said once, not once per layer.
    assert_eq!(lines[0].matches("in use").count(), 1, "{lines:?}");

    // An address that is not local is the same exit code.
    let out = node_on("192.0.2.1", "6881");
    assert_eq!(out.status.code(), Some(4), "{:?}", stderr_lines(&out));
    assert_eq!(stderr_lines(&out).len(), 1, "{:?}", stderr_lines(&out));
}

/// Runs trawl with one resource limit lowered in the child only.
fn trawl_with_limit(args: &[&str], resource: libc::__rlimit_resource_t, value: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(TRAWL);
    cmd.args(args).env("RUST_LOG", "warn");
    // SAFETY: setrlimit is async-signal-safe; it only touches the child's limits.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("run trawl")
}

#[test]
fn too_low_limits_name_the_limit_and_the_fix() {
    let args = [
        "node",
        "--port",
        "0",
        "--bind",
        "127.81.4.1",
        "--allow-loopback",
        "--bootstrap",
        "127.81.4.1:9",
        "--duration",
        "1",
    ];
    let out = trawl_with_limit(&args, libc::RLIMIT_MEMLOCK, 64 * 1024);
    assert_eq!(out.status.code(), Some(3), "{:?}", stderr_lines(&out));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    for needle in ["RLIMIT_MEMLOCK", "ulimit -l", "LimitMEMLOCK="] {
        assert!(lines[0].contains(needle), "{needle}: {lines:?}");
    }

    let out = trawl_with_limit(&args, libc::RLIMIT_NOFILE, 512);
    assert_eq!(out.status.code(), Some(3), "{:?}", stderr_lines(&out));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    for needle in ["RLIMIT_NOFILE is 512", "ulimit -n", "LimitNOFILE="] {
        assert!(lines[0].contains(needle), "{needle}: {lines:?}");
    }
}

#[test]
fn every_subcommand_help_has_examples_and_the_top_level_lists_exit_codes() {
    for sub in ["crawl", "node", "lookup", "announce", "export", "import", "stats"] {
        let out = trawl(&[sub, "--help"]);
        assert!(out.status.success(), "{sub}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "{sub}: {text}");
        assert!(text.contains(&format!("trawl {sub} ")), "{sub}: {text}");
    }
    let out = trawl(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for code in ["Exit codes:", "  3  ", "  4  ", "  5  ", "RUST_LOG"] {
        assert!(text.contains(code), "{code}: {text}");
    }
}

#[test]
fn announce_with_no_reachable_node_fails() {
    // Nothing listens on this address: the announce must report failure, not success.
    let out = trawl(&[
        "announce",
        IH,
        "--port",
        "6881",
        "--bind",
        "127.81.3.2",
        "--allow-loopback",
        "--bootstrap",
        "127.81.3.1:9",
        "--timeout",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", stderr_lines(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["announced_to"], 0);
}
