//! The schema's encoders and decoders on real values: sort order, round trips,
//! and refusal of truncated or trailing bytes.

use super::*;

fn h(b: u8) -> InfoHash {
    [b; 20]
}

#[test]
fn due_keys_sort_by_due_then_hash() {
    let mut keys = vec![
        due_key(300, &h(1)),
        due_key(5, &h(9)),
        due_key(0x0100_0000, &h(0)),
        due_key(5, &h(2)),
        due_key(255, &h(7)),
    ];
    keys.sort();
    let order: Vec<_> = keys.iter().map(|k| decode_due_key(k).unwrap()).collect();
    assert_eq!(
        order,
        vec![(5, h(2)), (5, h(9)), (255, h(7)), (300, h(1)), (0x0100_0000, h(0))]
    );
}

#[test]
fn node_keys_group_by_family_then_id() {
    let v6: SocketAddr = "[::1]:6881".parse().unwrap();
    let v4: SocketAddr = "127.0.0.1:6881".parse().unwrap();
    let mut keys = vec![
        node_key(&DhtNode::new(h(1), v6)),
        node_key(&DhtNode::new(h(9), v4)),
        node_key(&DhtNode::new(h(2), v4)),
    ];
    keys.sort();
    assert_eq!(&keys[0][1..], &h(2));
    assert_eq!(&keys[1][1..], &h(9));
    assert_eq!(keys[2][0], FAMILY_V6);
}

#[test]
fn node_values_keep_sampling_state_and_old_values_still_decode() {
    let v4: SocketAddr = "127.0.0.1:6881".parse().unwrap();
    let v6: SocketAddr = "[::1]:6882".parse().unwrap();
    for (addr, bep51) in [(v4, Some(true)), (v6, Some(false)), (v4, None)] {
        let n = DhtNode {
            next_sample: 0xfeed_beef,
            bep51,
            ..DhtNode::new(h(5), addr)
        };
        let mut v = Vec::new();
        encode_node(&n, &mut v);
        let ip_len = if addr.is_ipv4() { 4 } else { 16 };
        assert_eq!(v.len(), ip_len + 2 + NODE_STATE_LEN);
        assert_eq!(decode_node(&node_key(&n), &v).unwrap(), n);
        // Every other length is refused: truncated state or trailing bytes.
        for cut in ip_len + 1..v.len() {
            if cut != ip_len + 2 {
                assert!(decode_node(&node_key(&n), &v[..cut]).is_err(), "cut at {cut}");
            }
        }
        v.push(0);
        assert!(decode_node(&node_key(&n), &v).is_err());
    }
    // A value from before the state existed: 127.0.0.1:6881, address only.
    let old = [127, 0, 0, 1, 0x1a, 0xe1];
    let n = DhtNode::new(h(5), v4);
    assert_eq!(decode_node(&node_key(&n), &old).unwrap(), n);
    // An unknown BEP 51 byte is corruption, not a guess.
    let bad = [127, 0, 0, 1, 0x1a, 0xe1, 0, 0, 0, 1, 3];
    assert!(decode_node(&node_key(&n), &bad).is_err());
}

#[test]
fn infohash_record_round_trips_in_13_bytes() {
    let r = InfoHashRecord {
        first_seen: 1,
        last_seen: 0xfeed_beef,
        seen: 7,
        sources: SourceSet(0).with(Source::Sample).with(Source::Import),
    };
    let v = encode_infohash(&r);
    assert_eq!(v.len(), 13);
    assert_eq!(decode_infohash(&v).unwrap(), r);
    assert!(decode_infohash(&v[..12]).is_err());
}

#[test]
fn staging_round_trips_and_caps_peers() {
    let peers: Vec<SocketAddr> = (0..70u16)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], 1000 + i)))
        .chain(["[::1]:9".parse().unwrap()])
        .collect();
    let e = StagingEntry {
        info_hash: h(3),
        due: 10,
        enqueued_at: 5,
        attempts: 2,
        last_error: Some("timeout".into()),
        peers,
        leased: true,
        peers_since_lease: false,
    };
    let mut buf = Vec::new();
    encode_staging(&e, &mut buf);
    let d = decode_staging(h(3), &buf).unwrap();
    assert_eq!(d.peers.len(), MAX_STAGED_PEERS);
    assert_eq!(d.peers.last(), e.peers.last(), "the newest peers are the ones kept");
    assert_eq!(
        (d.due, d.enqueued_at, d.attempts, d.last_error.as_deref()),
        (10, 5, 2, Some("timeout"))
    );
    assert_eq!((d.leased, d.peers_since_lease), (true, false));
}

#[test]
fn staging_state_byte_round_trips_and_old_values_still_decode() {
    let mut e = StagingEntry {
        info_hash: h(3),
        due: 10,
        enqueued_at: 5,
        attempts: 1,
        last_error: None,
        peers: vec!["127.0.0.1:6881".parse().unwrap()],
        leased: false,
        peers_since_lease: true,
    };
    let mut buf = Vec::new();
    encode_staging(&e, &mut buf);
    assert_eq!(decode_staging(h(3), &buf).unwrap(), e);
    // A value from before the state byte: the same bytes without it.
    e.peers_since_lease = false;
    encode_staging(&e, &mut buf);
    assert_eq!(buf.pop(), Some(0));
    assert_eq!(decode_staging(h(3), &buf).unwrap(), e);
    // Unknown state bits and bytes after the state are corruption.
    buf.push(4);
    assert!(decode_staging(h(3), &buf).is_err());
    buf.pop();
    buf.extend_from_slice(&[0, 0]);
    assert!(decode_staging(h(3), &buf).is_err());
}

#[test]
fn provisional_names_round_trip_cut_to_the_cap() {
    let n = ProvisionalName {
        info_hash: h(6),
        name: b"Ubuntu \xff iso".to_vec(),
        at: 0xfeed_beef,
    };
    let mut buf = vec![9; 3];
    encode_provisional_name(&n, &mut buf);
    assert_eq!(buf.len(), 4 + n.name.len());
    assert_eq!(decode_provisional_name(h(6), &buf).unwrap(), n);
    let long = ProvisionalName {
        name: vec![b'x'; MAX_PROVISIONAL_NAME_LEN + 10],
        ..n.clone()
    };
    encode_provisional_name(&long, &mut buf);
    assert_eq!(
        decode_provisional_name(h(6), &buf).unwrap().name.len(),
        MAX_PROVISIONAL_NAME_LEN
    );
    assert!(decode_provisional_name(h(6), &buf[..3]).is_err());
    buf.push(b'x');
    assert!(
        decode_provisional_name(h(6), &buf).is_err(),
        "longer than any value written"
    );
}

fn sample_torrent() -> TorrentRecord {
    let f = |p: &[&str], len| FileEntry {
        path: p.iter().map(|s| s.as_bytes().to_vec()).collect(),
        length: len,
    };
    TorrentRecord {
        info_hash: h(4),
        version: TorrentVersion::V1,
        v2_hash: None,
        name: b"Show \xff raw".to_vec(),
        files: vec![
            f(&["Season 1", "e01.mkv"], 1 << 30),
            f(&["Season 1", "e02.mkv"], 5),
            f(&["Season 1", "subs", "e01.srt"], 7),
            f(&["Season 2", "e01.mkv"], 9),
            f(&["readme.txt"], 0),
        ],
        total_size: (1 << 30) + 21,
        piece_length: 1 << 20,
        private: true,
        class: ContentClass::Video,
        content_type: Some(BitmagnetType::TvShow),
        fetched_at: 1_700_000_000,
        scrape: None,
        info_dict: None,
    }
}

#[test]
fn torrent_round_trips_losslessly() {
    let t = sample_torrent();
    let mut buf = Vec::new();
    encode_torrent(&t, &mut buf);
    assert_eq!(decode_torrent(h(4), &buf).unwrap(), t);
    assert_eq!(torrent_class(&buf), Some(ContentClass::Video));
    assert_eq!(t.name_readable(), "Show \u{fffd} raw");
}

#[test]
fn v2_and_hybrid_torrents_round_trip_and_old_records_read_as_v1() {
    let v1 = sample_torrent();
    let mut buf = Vec::new();
    encode_torrent(&v1, &mut buf);
    assert_eq!(
        buf[7] & (FLAG_V2_HASH | FLAG_NO_V1),
        0,
        "a v1 record is what old builds wrote"
    );
    for version in [TorrentVersion::V2, TorrentVersion::Hybrid] {
        let t = TorrentRecord {
            version,
            v2_hash: Some([0xab; 32]),
            ..sample_torrent()
        };
        encode_torrent(&t, &mut buf);
        assert_eq!(decode_torrent(h(4), &buf).unwrap(), t, "{version:?}");
        assert_eq!(torrent_class(&buf), Some(ContentClass::Video));
        for cut in 0..buf.len() {
            assert!(decode_torrent(h(4), &buf[..cut]).is_err(), "{version:?} cut at {cut}");
        }
    }
    // "No v1" without the hash it needs is corrupt, not a v1 torrent.
    encode_torrent(&v1, &mut buf);
    buf[7] |= FLAG_NO_V1;
    assert!(decode_torrent(h(4), &buf).is_err());
}

#[test]
fn torrent_decoder_rejects_every_truncation_and_bad_counts() {
    let mut buf = Vec::new();
    encode_torrent(&sample_torrent(), &mut buf);
    for cut in 0..buf.len() {
        assert!(decode_torrent(h(4), &buf[..cut]).is_err(), "cut at {cut}");
    }
    // A huge declared file count must fail, not allocate.
    let mut hdr = buf[..8].to_vec();
    put_varint(&mut hdr, 0); // total
    put_varint(&mut hdr, 0); // piece length
    put_varint(&mut hdr, 0); // empty name
    put_varint(&mut hdr, u64::MAX); // files
    assert!(decode_torrent(h(4), &hdr).is_err());
}
