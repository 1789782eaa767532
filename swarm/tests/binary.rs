//! The `trawl-swarm` binary: a preset run writes its ground truth.

mod common;

use common::free_port;

#[test]
fn the_binary_runs_the_mainline_preset_and_writes_its_truth() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    let (port, peer_port) = (free_port(), free_port());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trawl-swarm"))
        .args([
            "--preset",
            "fast",
            "--preset",
            "mainline",
            "--nodes",
            "2000",
            "--torrents",
            "4000",
        ])
        .args(["--port", &port.to_string(), "--peer-port", &peer_port.to_string()])
        .args(["--duration", "0.5", "--truth-secs", "240", "--manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let ready: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(ready["preset"], "mainline", "the last --preset wins");
    let summary = &ready["manifest"];
    let (reachable, discoverable) = (
        summary["reachable"].as_u64().unwrap(),
        summary["discoverable"].as_u64().unwrap(),
    );
    assert!(discoverable > 0 && discoverable <= reachable && reachable < 4000);
    assert!(summary["fetchable"].as_u64().unwrap() < 4000);
    assert_eq!(summary["run_secs"], 240.0, "--truth-secs, not --duration");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let listed = lines.iter().filter(|l| l["discoverable"] == true).count() as u64;
    assert_eq!(listed, discoverable);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "final");
    assert_eq!(last["bans"], 0);
    assert!(last["counters"]["dropped_budget"].is_u64() && last["bans_by_ip"].is_array());
}
