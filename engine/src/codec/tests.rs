//! Codec tests on real-format messages: the BEP examples byte for byte, round
//! trips through the encoders, and a table of malformed inputs with the exact
//! error each must produce.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::bencode::{self, ErrorKind};
use super::compact::CompactNode;
use super::krpc::*;
use super::scrape::ScrapeBloom;
use super::wire::*;

const ID_A: &[u8; 20] = b"abcdefghij0123456789";
const ID_M: &[u8; 20] = b"mnopqrstuvwxyz123456";

fn decode(bytes: &[u8]) -> Message<'_> {
    match Message::decode(bytes) {
        Ok(m) => m,
        Err(e) => panic!("{e} in {}", String::from_utf8_lossy(bytes)),
    }
}

fn query_of<'a>(m: &Message<'a>) -> Query<'a> {
    match &m.kind {
        Kind::Query(q) => *q,
        other => panic!("expected a query, got {other:?}"),
    }
}

fn response_of<'a>(m: &Message<'a>) -> Response<'a> {
    match &m.kind {
        Kind::Response(r) => r.clone(),
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Re-encodes a decoded message with the public encoders.
fn reencode(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    super::krpc::reencode(m, &mut out);
    out
}

/// Decoding then encoding a canonical message gives back its exact bytes.
fn assert_byte_round_trip(bytes: &[u8]) {
    let m = decode(bytes);
    let again = reencode(&m);
    assert_eq!(String::from_utf8_lossy(&again), String::from_utf8_lossy(bytes));
}

// ---- BEP 5 examples, byte for byte ----------------------------------------

#[test]
fn bep5_ping() {
    let q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    let m = decode(q);
    assert_eq!(m.transaction_id, b"aa");
    assert_eq!(query_of(&m), Query::Ping { id: ID_A });
    assert!(!m.read_only);
    assert_byte_round_trip(q);

    let r = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
    let m = decode(r);
    let resp = response_of(&m);
    assert_eq!(resp.id, ID_M);
    assert!(resp.nodes.is_empty() && resp.values.is_empty() && resp.samples.is_empty());
    assert_byte_round_trip(r);
}

#[test]
fn bep5_error() {
    let e = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
    let m = decode(e);
    assert_eq!(
        m.kind,
        Kind::Error(ErrorReply {
            code: ERROR_GENERIC,
            message: b"A Generic Error Ocurred"
        })
    );
    assert_byte_round_trip(e);
}

#[test]
fn bep5_find_node() {
    let q = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe";
    let m = decode(q);
    assert_eq!(
        query_of(&m),
        Query::FindNode {
            id: ID_A,
            target: ID_M,
            want: Want::default()
        }
    );
    assert_byte_round_trip(q);
}

#[test]
fn bep5_placeholder_nodes_are_rejected() {
    // The BEP's reply examples abbreviate `nodes` as "def456..." (9 bytes), which
    // is not a whole number of 26-byte entries: such a reply is malformed.
    let r = b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re";
    assert_eq!(
        Message::decode(r),
        Err(DecodeError::Invalid {
            key: RESP_NODES,
            offset: 39
        })
    );
}

#[test]
fn bep5_get_peers() {
    let q = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
    let m = decode(q);
    assert_eq!(
        query_of(&m),
        Query::GetPeers {
            id: ID_A,
            info_hash: ID_M,
            want: Want::default(),
            scrape: false,
            noseed: false
        }
    );
    assert_byte_round_trip(q);

    let r = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
    let m = decode(r);
    let resp = response_of(&m);
    assert_eq!(resp.token, Some(&b"aoeusnth"[..]));
    assert_eq!(resp.values.len(), 2);
    let peers: Vec<SocketAddr> = resp.values.collect();
    assert_eq!(
        peers,
        vec![
            SocketAddr::new(Ipv4Addr::new(b'a', b'x', b'j', b'e').into(), u16::from_be_bytes(*b".u")),
            SocketAddr::new(Ipv4Addr::new(b'i', b'd', b'h', b't').into(), u16::from_be_bytes(*b"nm")),
        ]
    );
    assert_byte_round_trip(r);
}

#[test]
fn bep5_announce_peer_with_and_without_implied_port() {
    let q = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    let m = decode(q);
    assert_eq!(
        query_of(&m),
        Query::AnnouncePeer {
            id: ID_A,
            info_hash: ID_M,
            port: 6881,
            implied_port: false,
            token: b"aoeusnth",
            seed: false
        }
    );
    assert_byte_round_trip(q);

    let q = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    let m = decode(q);
    match query_of(&m) {
        Query::AnnouncePeer { implied_port, port, .. } => assert!(implied_port && port == 6881),
        other => panic!("{other:?}"),
    }
    assert_byte_round_trip(q);
}

// ---- BEP 32, 33, 42, 43, 51 ----------------------------------------------

fn node_v4(i: u8) -> CompactNode {
    CompactNode {
        id: [i; 20],
        addr: SocketAddr::new(Ipv4Addr::new(127, 0, i, 1).into(), 6881 + u16::from(i)),
    }
}

fn node_v6(i: u8) -> CompactNode {
    CompactNode {
        id: [0x80 | i; 20],
        addr: SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i)).into(), 7000),
    }
}

#[test]
fn bep51_sample_infohashes_query_and_reply() {
    let q = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q17:sample_infohashes1:t2:aa1:y1:qe";
    let m = decode(q);
    assert_eq!(
        query_of(&m),
        Query::SampleInfohashes {
            id: ID_A,
            target: ID_M,
            want: Want::default()
        }
    );
    assert_byte_round_trip(q);

    // A reply as BEP 51 lays it out: id, interval, nodes, num, samples.
    let nodes: Vec<CompactNode> = (1..=8).map(node_v4).collect();
    let samples: Vec<[u8; 20]> = (0..20u8).map(|i| [i; 20]).collect();
    let mut bytes = b"d1:rd2:id20:mnopqrstuvwxyz1234568:intervali21600e5:nodes208:".to_vec();
    for n in &nodes {
        bytes.extend_from_slice(&n.id);
        if let IpAddr::V4(ip) = n.addr.ip() {
            bytes.extend_from_slice(&ip.octets());
        }
        bytes.extend_from_slice(&n.addr.port().to_be_bytes());
    }
    bytes.extend_from_slice(b"3:numi1234e7:samples400:");
    for s in &samples {
        bytes.extend_from_slice(s);
    }
    bytes.extend_from_slice(b"e1:t2:aa1:y1:re");
    let m = decode(&bytes);
    let r = response_of(&m);
    assert_eq!(r.interval, Some(21600));
    assert_eq!(r.num, Some(1234));
    assert_eq!(r.nodes.len(), 8);
    assert_eq!(r.nodes.clone().collect::<Vec<_>>(), nodes);
    assert_eq!(r.samples.len(), 20);
    assert_eq!(r.samples.clone().copied().collect::<Vec<_>>(), samples);
    assert_byte_round_trip(&bytes);

    // The encoder writes the same bytes from owned data.
    let mut out = Vec::new();
    let reply = ResponseOut {
        nodes: &nodes,
        samples: &samples,
        interval: Some(21600),
        num: Some(1234),
        ..ResponseOut::new(ID_M)
    };
    encode_response(&mut out, b"aa", &reply, None, None);
    assert_eq!(out, bytes);
}

#[test]
fn bep51_empty_sample_reply_keeps_its_samples_key() {
    let mut out = Vec::new();
    let reply = ResponseOut {
        interval: Some(60),
        num: Some(0),
        ..ResponseOut::new(ID_M)
    };
    encode_response(&mut out, b"aa", &reply, None, None);
    assert!(
        out.windows(10).any(|w| w == b"7:samples0"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let r = response_of(&decode(&out));
    assert!(r.samples.is_empty());
    assert_eq!(r.interval, Some(60));
}

#[test]
fn bep32_ipv6_nodes_peers_and_want() {
    let q =
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe";
    let m = decode(q);
    assert_eq!(
        query_of(&m),
        Query::FindNode {
            id: ID_A,
            target: ID_M,
            want: Want { v4: true, v6: true }
        }
    );
    assert_byte_round_trip(q);

    let nodes = [node_v4(1), node_v4(2)];
    let nodes6 = [node_v6(1), node_v6(2), node_v6(3)];
    let values = [
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 51413),
        SocketAddr::new(Ipv4Addr::new(127, 1, 2, 3).into(), 6881),
    ];
    let mut out = Vec::new();
    let reply = ResponseOut {
        nodes: &nodes,
        nodes6: &nodes6,
        values: &values,
        token: Some(b"tok"),
        ..ResponseOut::new(ID_A)
    };
    let requester = SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6).into(), 4000);
    encode_response(&mut out, b"\x00\x01", &reply, Some(requester), Some(b"TR01"));
    let m = decode(&out);
    assert_eq!(m.requester_ip, Some(requester));
    assert_eq!(m.version, Some(&b"TR01"[..]));
    assert_eq!(m.transaction_id, b"\x00\x01");
    let r = response_of(&m);
    assert_eq!(r.nodes.clone().collect::<Vec<_>>(), nodes);
    assert!(r.nodes6.is_v6());
    assert_eq!(r.nodes6.raw().len(), 3 * COMPACT_NODE_V6_LEN);
    assert_eq!(r.nodes6.clone().collect::<Vec<_>>(), nodes6);
    assert_eq!(r.values.clone().collect::<Vec<_>>(), values);
    assert_eq!(r.token, Some(&b"tok"[..]));
    assert_byte_round_trip(&out);
}

#[test]
fn nodes_of_the_wrong_family_are_left_out() {
    let mixed = [node_v4(1), node_v6(2), node_v4(3)];
    let mut out = Vec::new();
    encode_response(
        &mut out,
        b"aa",
        &ResponseOut {
            nodes: &mixed,
            nodes6: &mixed,
            ..ResponseOut::new(ID_A)
        },
        None,
        None,
    );
    let r = response_of(&decode(&out));
    assert_eq!(r.nodes.collect::<Vec<_>>(), vec![node_v4(1), node_v4(3)]);
    assert_eq!(r.nodes6.collect::<Vec<_>>(), vec![node_v6(2)]);
}

#[test]
fn bep33_scrape_query_and_bloom_reply() {
    let q = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234566:noseedi1e6:scrapei1ee1:q9:get_peers1:t2:aa1:y1:qe";
    let m = decode(q);
    assert_eq!(
        query_of(&m),
        Query::GetPeers {
            id: ID_A,
            info_hash: ID_M,
            want: Want::default(),
            scrape: true,
            noseed: true
        }
    );
    assert_byte_round_trip(q);

    let mut seeds = ScrapeBloom::new();
    let mut peers = ScrapeBloom::new();
    for i in 0..50u8 {
        peers.insert(Ipv4Addr::new(10, 0, 0, i).into());
        if i % 5 == 0 {
            seeds.insert(Ipv4Addr::new(10, 0, 0, i).into());
        }
    }
    let mut out = Vec::new();
    let reply = ResponseOut {
        bf_seeds: Some(seeds.as_bytes()),
        bf_peers: Some(peers.as_bytes()),
        token: Some(b"t0k3n"),
        ..ResponseOut::new(ID_M)
    };
    encode_response(&mut out, b"aa", &reply, None, None);
    assert!(
        out.starts_with(b"d1:rd4:BFpe256:"),
        "keys must be sorted, uppercase first"
    );
    let r = response_of(&decode(&out));
    assert_eq!(r.bf_seeds, Some(seeds.as_bytes()));
    assert_eq!(r.bf_peers, Some(peers.as_bytes()));
    let estimate = ScrapeBloom::from_bytes(r.bf_peers.unwrap_or(&[0; 256])).estimate();
    assert!((estimate - 50.0).abs() < 5.0, "estimate {estimate}");
    assert_byte_round_trip(&out);
}

#[test]
fn libtorrent_get_peers_reply_carries_the_name() {
    // As libtorrent 2.0 sends it: the name its announcers gave, beside values
    // and a token (keys sorted: `n` after `id`, before `token` and `values`).
    let r = b"d2:ip6:\x7f\x00\x00\x01\x1a\xe11:rd2:id20:mnopqrstuvwxyz1234561:n21:Ubuntu 24.04 \xc3\xa9dition5:token4:t0k36:valuesl6:\x7f\x00\x00\x05\x1b\x58ee1:t2:aa1:v4:LT\x02\x001:y1:re";
    let m = decode(r);
    let resp = response_of(&m);
    assert_eq!(resp.name, Some(&b"Ubuntu 24.04 \xc3\xa9dition"[..]));
    assert_eq!(resp.token, Some(&b"t0k3"[..]));
    assert_eq!(resp.values.count(), 1);
    assert_byte_round_trip(r);
    // A name that is not a string is a malformed reply, not a missing name.
    assert!(Message::decode(b"d1:rd2:id20:mnopqrstuvwxyz1234561:ni5ee1:t2:aa1:y1:re").is_err());

    let mut out = Vec::new();
    let reply = ResponseOut {
        name: Some(b"x"),
        token: Some(b"tk"),
        ..ResponseOut::new(ID_M)
    };
    encode_response(&mut out, b"aa", &reply, None, None);
    assert_eq!(response_of(&decode(&out)).name, Some(&b"x"[..]));
    assert_byte_round_trip(&out);
}

#[test]
fn bep33_test_vector() {
    // BEP 33: 192.0.2.0..=192.0.2.255 and 2001:db8::..=2001:db8::3e7 give 1224.93.
    let mut bf = ScrapeBloom::new();
    for i in 0..=255u8 {
        bf.insert(Ipv4Addr::new(192, 0, 2, i).into());
    }
    for i in 0..=0x3e7u16 {
        bf.insert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i).into());
    }
    let estimate = bf.estimate();
    assert!((estimate - 1224.93).abs() < 0.01, "estimate {estimate}");
    assert!(bf.contains(Ipv4Addr::new(192, 0, 2, 7).into()));
    assert!(bf.contains(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped())));

    let mut a = ScrapeBloom::new();
    let mut b = ScrapeBloom::new();
    a.insert(Ipv4Addr::new(192, 0, 2, 1).into());
    b.insert(Ipv4Addr::new(192, 0, 2, 2).into());
    a.union(&b);
    assert!(a.contains(Ipv4Addr::new(192, 0, 2, 1).into()) && a.contains(Ipv4Addr::new(192, 0, 2, 2).into()));
    assert_eq!(ScrapeBloom::new().estimate(), 0.0);
    assert!(ScrapeBloom::from_bytes(&[0xff; 256]).estimate().is_finite());
}

#[test]
fn bep42_and_bep43() {
    let q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:aa1:y1:qe";
    let m = decode(q);
    assert!(m.read_only);
    assert_byte_round_trip(q);

    let r = b"d2:ip6:\x7f\x00\x00\x01\x1a\xe11:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
    let m = decode(r);
    assert_eq!(m.requester_ip, Some(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 6881)));
    assert_byte_round_trip(r);
}

#[test]
fn unknown_methods_and_extra_keys_still_decode() {
    let q =
        b"d1:ad2:id20:abcdefghij01234567895:extrali1ed1:xleee6:zzzzzz3:abce1:q6:vote_x1:t2:aa1:v4:UT011:y1:q3:zzzi0ee";
    let m = decode(q);
    assert_eq!(
        query_of(&m),
        Query::Unknown {
            method: b"vote_x",
            id: Some(ID_A)
        }
    );
    assert_eq!(query_of(&m).id(), Some(ID_A));
    assert_eq!(m.version, Some(&b"UT01"[..]));

    // A known method with unknown arguments keeps its typed form.
    let q = b"d1:ad2:id20:abcdefghij01234567894:porti1e3:zzz0:e1:q4:ping1:t2:aa1:y1:qe";
    assert_eq!(query_of(&decode(q)), Query::Ping { id: ID_A });

    // Lenient decorations: a non-string `v`, a short `ip`, a string `ro`.
    let r = b"d2:ip3:abc1:rd2:id20:mnopqrstuvwxyz123456e2:ro1:x1:t2:aa1:vi3e1:y1:re";
    let m = decode(r);
    assert_eq!((m.version, m.requester_ip, m.read_only), (None, None, false));
}

#[test]
fn duplicate_keys_last_wins_and_unsorted_keys_are_accepted() {
    let q = b"d1:t2:xx1:y1:q1:q4:ping1:ad2:id20:mnopqrstuvwxyz1234562:id20:abcdefghij0123456789e1:t2:aae";
    let m = decode(q);
    assert_eq!(m.transaction_id, b"aa");
    assert_eq!(query_of(&m), Query::Ping { id: ID_A });
    // The generic view applies the same rule.
    let v = bencode::decode(b"d1:ai1e1:ai2ee").unwrap();
    assert_eq!(v.as_dict().and_then(|d| d.get(b"a")).and_then(|v| v.as_int()), Some(2));
}

// ---- Generic bencode ----------------------------------------------------

#[test]
fn bencode_views_borrow_and_reencode_exactly() {
    let input = b"d4:infod6:lengthi-42e4:name3:abce4:listli0ei9223372036854775807ei-9223372036854775808e0:lee1:adee";
    let v = bencode::decode(input).unwrap();
    let d = v.as_dict().unwrap();
    let info = d.get(b"info").and_then(|v| v.as_dict()).unwrap();
    assert_eq!(info.get(b"length").and_then(|v| v.as_int()), Some(-42));
    let name = info.get(b"name").and_then(|v| v.as_bytes()).unwrap();
    // Zero-copy: the slice points into the input.
    assert!(input.as_ptr_range().contains(&name.as_ptr()));
    let list: Vec<_> = d.get(b"list").and_then(|v| v.as_list()).unwrap().iter().collect();
    assert_eq!(list.len(), 5);
    assert_eq!(list[1].as_int(), Some(i64::MAX));
    assert_eq!(list[2].as_int(), Some(i64::MIN));
    assert_eq!(list[3].as_bytes(), Some(&b""[..]));
    assert_eq!(d.get(b"a").and_then(|v| v.as_dict()).map(|d| d.iter().count()), Some(0));
    let mut out = Vec::new();
    bencode::value(&mut out, &v);
    assert_eq!(out, input);
}

#[test]
fn writer_primitives() {
    let mut out = Vec::new();
    bencode::dict_begin(&mut out);
    bencode::key_int(&mut out, b"a", i64::MIN);
    bencode::bytes(&mut out, b"b");
    bencode::list_begin(&mut out);
    bencode::int(&mut out, 0);
    bencode::int(&mut out, 10);
    bencode::bytes(&mut out, b"");
    bencode::end(&mut out);
    bencode::end(&mut out);
    assert_eq!(out, b"d1:ai-9223372036854775808e1:bli0ei10e0:ee");
    assert!(bencode::decode(&out).is_ok());
}

#[test]
fn depth_limit() {
    let ok = [b"l".repeat(bencode::MAX_DEPTH), b"e".repeat(bencode::MAX_DEPTH)].concat();
    assert!(bencode::decode(&ok).is_ok());
    let deep = [b"l".repeat(bencode::MAX_DEPTH + 1), b"e".repeat(bencode::MAX_DEPTH + 1)].concat();
    assert_eq!(
        bencode::decode(&deep).unwrap_err(),
        bencode::Error {
            kind: ErrorKind::TooDeep,
            offset: bencode::MAX_DEPTH
        }
    );
    // The same limit holds when KRPC skips an unknown key.
    let mut msg = b"d1:x".to_vec();
    msg.extend_from_slice(&deep);
    msg.extend_from_slice(b"e");
    assert_eq!(
        Message::decode(&msg),
        Err(DecodeError::Bencode(bencode::Error {
            kind: ErrorKind::TooDeep,
            offset: 4 + bencode::MAX_DEPTH - 1
        }))
    );
}

#[test]
fn malformed_bencode_table() {
    use ErrorKind::*;
    let cases: &[(&[u8], ErrorKind, usize)] = &[
        (b"", Truncated, 0),
        (b"i-0e", BadInteger, 2),
        (b"i03e", BadInteger, 1),
        (b"i-03e", BadInteger, 2),
        (b"ie", BadInteger, 1),
        (b"i-e", BadInteger, 2),
        (b"i12", Truncated, 3),
        (b"i1x2e", BadInteger, 2),
        (b"i9223372036854775808e", IntegerOverflow, 0),
        (b"i-9223372036854775809e", IntegerOverflow, 0),
        (b"i99999999999999999999999e", IntegerOverflow, 0),
        (b"5:abc", Truncated, 0),
        (b"4294967296000:abc", Truncated, 0),
        (b"99999999999999999999999:x", LengthOverflow, 0),
        (b"03:abc", BadLength, 0),
        (b"3x:abc", BadLength, 1),
        (b"12", Truncated, 2),
        (b"i1ei2e", TrailingBytes, 3),
        (b"l", Truncated, 1),
        (b"li1e", Truncated, 4),
        (b"d1:a", Truncated, 4),
        (b"d1:ae", UnexpectedByte, 4),
        (b"di1ei2ee", KeyNotString, 1),
        (b"dle", KeyNotString, 1),
        (b"x", UnexpectedByte, 0),
        (b"e", UnexpectedByte, 0),
        (b"l-1e", UnexpectedByte, 1),
    ];
    for &(input, kind, offset) in cases {
        assert_eq!(
            bencode::decode(input),
            Err(bencode::Error { kind, offset }),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn malformed_krpc_table() {
    use DecodeError::*;
    let t = |kind, offset| Bencode(bencode::Error { kind, offset });
    let cases: &[(&[u8], DecodeError)] = &[
        (b"", t(ErrorKind::Truncated, 0)),
        (b"le", NotADict { offset: 0 }),
        (b"d1:t2:aa1:y1:qe", Missing { key: KEY_METHOD }),
        (b"d1:q4:ping1:t2:aa1:y1:qe", Missing { key: KEY_ARGS }),
        (b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", Invalid { key: ARG_ID, offset: 9 }),
        (b"d1:adi1ee1:q4:ping1:t2:aa1:y1:qe", t(ErrorKind::KeyNotString, 5)),
        (b"d1:ali1ee1:q4:ping1:t2:aa1:y1:qe", NotADict { offset: 4 }),
        (b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe", Missing { key: KEY_TRANSACTION }),
        (b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aae", Missing { key: KEY_TYPE }),
        (b"d1:t2:aa1:y1:xe", UnknownType { offset: 11 }),
        (b"d1:t2:aa1:y1:re", Missing { key: KEY_RESPONSE }),
        (b"d1:t2:aa1:y1:ee", Missing { key: KEY_ERROR }),
        (b"d1:ele1:t2:aa1:y1:ee", Invalid { key: KEY_ERROR, offset: 4 }),
        (b"d1:el3:abce1:t2:aa1:y1:ee", Invalid { key: KEY_ERROR, offset: 5 }),
        (b"d1:rd2:id20:abcdefghij01234567895:nodes27:abcdefghij0123456789abcdefge1:t2:aa1:y1:re", Invalid { key: RESP_NODES, offset: 39 }),
        (b"d1:rd2:id20:abcdefghij01234567896:nodes626:abcdefghij0123456789abcdefe1:t2:aa1:y1:re", Invalid { key: RESP_NODES6, offset: 40 }),
        (b"d1:rd2:id20:abcdefghij01234567897:samples3:abce1:t2:aa1:y1:re", Invalid { key: RESP_SAMPLES, offset: 41 }),
        (b"d1:rd2:id20:abcdefghij01234567896:valuesl5:abcdee1:t2:aa1:y1:re", Invalid { key: RESP_VALUES, offset: 40 }),
        (b"d1:rd2:id20:abcdefghij01234567896:values6:abcdefe1:t2:aa1:y1:re", Invalid { key: RESP_VALUES, offset: 40 }),
        (b"d1:rd2:id20:abcdefghij01234567894:BFsd3:abce1:t2:aa1:y1:re", Invalid { key: RESP_BF_SEEDS, offset: 38 }),
        (b"d1:rd2:id20:abcdefghij01234567898:interval2:10e1:t2:aa1:y1:re", Invalid { key: RESP_INTERVAL, offset: 42 }),
        (b"d1:rd5:nodes0:e1:t2:aa1:y1:re", Missing { key: RESP_ID }),
        (b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti65536e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe", Invalid { key: ARG_PORT, offset: 72 }),
        (b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234565:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe", Missing { key: ARG_PORT }),
        (b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti1ee1:q13:announce_peer1:t2:aa1:y1:qe", Missing { key: ARG_TOKEN }),
        (b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe", Missing { key: ARG_TARGET }),
        (b"d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:aa1:y1:qe", Missing { key: ARG_INFO_HASH }),
        (b"d1:t2:aa1:y1:qe1:x", t(ErrorKind::TrailingBytes, 15)),
        (b"d1:t2:aa1:y1:q", t(ErrorKind::Truncated, 14)),
        (b"d1:ti1e1:y1:qe", Invalid { key: KEY_TRANSACTION, offset: 4 }),
    ];
    for (input, expected) in cases {
        assert_eq!(
            Message::decode(input),
            Err(*expected),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn error_list_without_message_is_accepted() {
    let m = decode(b"d1:eli201ee1:t2:aa1:y1:ee");
    assert_eq!(
        m.kind,
        Kind::Error(ErrorReply {
            code: ERROR_GENERIC,
            message: b""
        })
    );
}

#[test]
fn implied_port_without_port_decodes_as_port_zero() {
    let q = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234565:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
    match query_of(&decode(q)) {
        Query::AnnouncePeer {
            port,
            implied_port,
            token,
            ..
        } => assert_eq!((port, implied_port, token), (0, true, &b"x"[..])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_name_what_and_where() {
    let e = Message::decode(b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe").unwrap_err();
    assert_eq!(e.offset(), Some(9));
    assert_eq!(e.to_string(), "krpc: invalid value for \"id\" at byte 9");
    let e = bencode::decode(b"i03e").unwrap_err();
    assert_eq!(e.to_string(), "bencode: malformed integer at byte 1");
}

#[test]
fn fuzz_seeds_are_valid_messages_that_round_trip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/krpc_decode");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("seed folder") {
        let path = entry.expect("seed entry").path();
        let bytes = std::fs::read(&path).expect("seed file");
        let m = Message::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(decode(&reencode(&m)), m, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} seeds");
}
