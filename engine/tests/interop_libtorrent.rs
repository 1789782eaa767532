//! Loopback interop with libtorrent (Debian's python3-libtorrent, driven by
//! scripts/lt_node.py): our lookup finds a peer announced through libtorrent
//! nodes, and libtorrent's lookup finds a peer announced through ours. All
//! traffic stays on 127.0.0.0/8; every process is killed when its test ends.

mod interop_common;

use std::net::SocketAddr;
use std::time::Duration;

use interop_common::lt::LtNode;
use interop_common::{info_hash, trawl_finds, trawl_network_with_announce, trawl_node};

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
