//! `trawl doctor` as an operator runs it: every check reported, JSON that
//! parses, and a port another process holds named as a failure with its fix
//! and exit code 1. (What the other checks find depends on the host; their
//! judgements are unit-tested in `commands/doctor.rs`.)

use std::net::UdpSocket;
use std::process::Command;

const TRAWL: &str = env!("CARGO_BIN_EXE_trawl");

#[test]
fn doctor_reports_every_check_and_fails_on_a_taken_port() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let free = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Command::new(TRAWL)
        .args([
            "doctor",
            "--json",
            "--bind",
            "127.0.0.1",
            "--port",
            &free.to_string(),
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "port",
        "nat",
        "open files",
        "locked memory",
        "net.core.rmem_max",
        "disk",
        "clock",
    ] {
        assert!(names.contains(&n), "{n}: {names:?}");
    }
    let port = &checks[0];
    assert_eq!(port["verdict"], "ok", "{port}");
    for c in checks.as_array().unwrap() {
        let v = c["verdict"].as_str().unwrap();
        assert!(["ok", "warn", "fail"].contains(&v), "{c}");
        assert_eq!(c["fix"].is_null(), v == "ok", "a problem comes with its fix: {c}");
    }
    // The disk is measured where the database will be (its parent, while it does not exist).
    let disk = checks.as_array().unwrap().iter().find(|c| c["name"] == "disk").unwrap();
    assert!(
        disk["detail"].as_str().unwrap().contains(dir.path().to_str().unwrap()),
        "{disk}"
    );

    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(TRAWL)
        .args(["doctor", "--bind", "127.0.0.1", "--port", &port, "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    let line = text
        .lines()
        .find(|l| l.starts_with("FAIL  port"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&port), "{line}");
    assert!(text.contains("fix: choose a free port with --port"), "{text}");
    assert!(err.starts_with("trawl: 1 check(s) failed: port"), "{err}");
}
