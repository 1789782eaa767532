//! The swarm's answers on loopback: small swarms, bounded in time, replies
//! checked by the project's codec and independently by serde_bencode, and the
//! libtorrent limits, models and downloaders each exercised.

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use serde::Deserialize;
use sha1::{Digest, Sha1};
use trawl_engine::codec::krpc::{self, Kind, Message, Query, Want};
use trawl_engine::codec::scrape::ScrapeBloom;
use trawl_swarm::catalogue::CatalogueConfig;
use trawl_swarm::model::{ModelMix, NodeModel, Preset};
use trawl_swarm::nodes::xor;
use trawl_swarm::politeness::RateLimit;
use trawl_swarm::{PeerBehaviour, PeerFaults, Swarm, SwarmConfig};

#[test]
fn replies_are_correct_by_both_decoders() {
    let running = start(config(None, PeerFaults::default()), 20);
    let swarm = running.swarm.clone();
    let client = Client::new(running.udp_port());
    let me = client.id;
    let node = live_bep51_node_with_torrents(&swarm);
    let node_id = swarm.nodes.id(node);

    // ping
    let raw = client
        .ask(&swarm, node, &Query::Ping { id: &me })
        .expect("a live node answers");
    let Kind::Response(r) = Message::decode(&raw).unwrap().kind else {
        panic!("not a response")
    };
    assert_eq!(r.id, &node_id);
    let ind = independent(&raw);
    assert_eq!(ind.y, b"r");
    assert_eq!(ind.r.unwrap().id.as_slice(), node_id);

    // find_node: the true 8 closest, checked by brute force.
    let target = [0x9c; 20];
    let raw = client.ask(&swarm, node, &find_node(&me, &target)).unwrap();
    let Kind::Response(r) = Message::decode(&raw).unwrap().kind else {
        panic!()
    };
    let got: Vec<[u8; 20]> = r.nodes.map(|n| n.id).collect();
    let mut brute: Vec<[u8; 20]> = (0..NODES).map(|i| swarm.nodes.id(i)).collect();
    brute.sort_by_key(|id| xor(id, &target));
    assert_eq!(got, brute[..8].to_vec());
    let ind_nodes = independent(&raw).r.unwrap().nodes.unwrap();
    assert_eq!(ind_nodes.len(), 8 * 26);
    assert_eq!(&ind_nodes[..20], &brute[0]);

    // sample_infohashes
    let raw = client
        .ask(
            &swarm,
            node,
            &Query::SampleInfohashes {
                id: &me,
                target: &target,
                want: Want::default(),
            },
        )
        .unwrap();
    let Kind::Response(r) = Message::decode(&raw).unwrap().kind else {
        panic!()
    };
    let held = swarm.catalogue.held_by(node);
    assert_eq!(r.num, Some(held.len() as i64));
    assert_eq!(r.interval, Some(i64::from(swarm.nodes.interval(node))));
    let samples: Vec<[u8; 20]> = r.samples.copied().collect();
    assert_eq!(samples.len(), held.len().min(20));
    for s in &samples {
        let t = swarm.catalogue.find(s).expect("samples are catalogue torrents");
        assert!(held.contains(&t));
    }
    let ind = independent(&raw).r.unwrap();
    assert_eq!(ind.samples.unwrap().len(), samples.len() * 20);
    assert_eq!(ind.num, r.num);
    assert_eq!(ind.interval, r.interval);

    // get_peers for a torrent the node holds: values are its holders' peers; scrape blooms.
    let t = held[0];
    let info_hash = *swarm.catalogue.infohash(t);
    let q = Query::GetPeers {
        id: &me,
        info_hash: &info_hash,
        want: Want::default(),
        scrape: true,
        noseed: false,
    };
    let raw = client.ask(&swarm, node, &q).unwrap();
    let Kind::Response(r) = Message::decode(&raw).unwrap().kind else {
        panic!()
    };
    let mut buf = [0u32; 16];
    let holders = swarm.catalogue.holders(t, &mut buf).to_vec();
    let mut values: Vec<SocketAddr> = r.values.collect();
    values.sort();
    let mut expected: Vec<SocketAddr> = holders
        .iter()
        .map(|&h| SocketAddr::V4(SocketAddrV4::new(swarm.nodes.addr(h), running.peer_port())))
        .collect();
    expected.sort();
    assert_eq!(values, expected);
    let token = r.token.expect("get_peers carries a token").to_vec();
    let mut peers_bloom = ScrapeBloom::new();
    holders
        .iter()
        .for_each(|&h| peers_bloom.insert(swarm.nodes.addr(h).into()));
    assert_eq!(r.bf_peers, Some(peers_bloom.as_bytes()));
    let ind = independent(&raw).r.unwrap();
    assert_eq!(ind.values.unwrap().len(), holders.len());
    assert_eq!(ind.bf_peers.unwrap().as_slice(), peers_bloom.as_bytes());
    let mut seeds_bloom = ScrapeBloom::new();
    holders
        .iter()
        .filter(|&&h| swarm.is_seed(t, h))
        .for_each(|&h| seeds_bloom.insert(swarm.nodes.addr(h).into()));
    assert_eq!(r.bf_seeds, Some(seeds_bloom.as_bytes()));
    assert_eq!(ind.bf_seeds.unwrap().as_slice(), seeds_bloom.as_bytes());
    assert_eq!(ind.token.unwrap().as_slice(), token);

    // announce_peer: the token is accepted, a forged one refused with 203.
    fn announce<'a>(me: &'a [u8; 20], info_hash: &'a [u8; 20], token: &'a [u8]) -> Query<'a> {
        Query::AnnouncePeer {
            id: me,
            info_hash,
            port: 6881,
            implied_port: false,
            token,
            seed: false,
        }
    }
    let raw = client.ask(&swarm, node, &announce(&me, &info_hash, &token)).unwrap();
    assert!(matches!(Message::decode(&raw).unwrap().kind, Kind::Response(_)));
    let raw = client
        .ask(&swarm, node, &announce(&me, &info_hash, b"forged!!"))
        .unwrap();
    let Kind::Error(e) = Message::decode(&raw).unwrap().kind else {
        panic!()
    };
    assert_eq!(e.code, 203);
    assert_eq!(independent(&raw).e.unwrap().0, 203);

    // A node without BEP 51 answers sample_infohashes with 204; a dead one not at all.
    let old = (0..NODES)
        .find(|&i| swarm.nodes.is_alive(i) && !swarm.nodes.supports_bep51(i))
        .unwrap();
    let raw = client
        .ask(
            &swarm,
            old,
            &Query::SampleInfohashes {
                id: &me,
                target: &target,
                want: Want::default(),
            },
        )
        .unwrap();
    assert!(matches!(Message::decode(&raw).unwrap().kind, Kind::Error(e) if e.code == 204));
    let dead = (0..NODES).find(|&i| !swarm.nodes.is_alive(i)).unwrap();
    assert!(client.ask(&swarm, dead, &Query::Ping { id: &me }).is_none());

    running.stop();
    let report = running.wait().unwrap();
    let c = report.counters;
    assert_eq!((c.answered_ping, c.answered_find_node, c.answered_sample), (1, 1, 1));
    assert_eq!(
        (c.answered_announce, c.announce_bad_token, c.sample_unsupported),
        (1, 1, 1)
    );
    assert_eq!(
        (c.answered_get_peers_values, c.answered_scrape, c.dropped_dead),
        (1, 1, 1)
    );
    assert_eq!(c.politeness_violations(), 0);
}

#[test]
fn politeness_violations_are_counted_exactly() {
    let limit = RateLimit { rate: 1.0, burst: 10.0 };
    let running = start(config(Some(limit), PeerFaults::default()), 20);
    let swarm = running.swarm.clone();
    let client = Client::new(running.udp_port());
    let me = client.id;
    let node = live_bep51_node_with_torrents(&swarm);
    let target = [1u8; 20];
    let sample = Query::SampleInfohashes {
        id: &me,
        target: &target,
        want: Want::default(),
    };
    // One polite sample, then three before the interval (> 10 s) has passed.
    let first = client.ask(&swarm, node, &sample).unwrap();
    let mut repeats = Vec::new();
    for _ in 0..3 {
        repeats.push(client.ask(&swarm, node, &sample).unwrap());
    }
    // An early query is still answered, with the same samples.
    let samples_of = |raw: &[u8]| match Message::decode(raw).unwrap().kind {
        Kind::Response(r) => r.samples.copied().collect::<Vec<_>>(),
        _ => panic!(),
    };
    assert!(repeats.iter().all(|r| samples_of(r) == samples_of(&first)));
    // The bucket of this (sender, node) holds 10 at 1/s; the 4 samples above took
    // 4 tokens, so of 16 pings sent at once 6 pass (7 if a second went by).
    let mut out = Vec::new();
    krpc::encode_query(&mut out, b"tx", &Query::Ping { id: &me }, false, None);
    let to = SocketAddrV4::new(swarm.nodes.addr(node), client.port);
    for _ in 0..16 {
        client.sock.send_to(&out, to).unwrap();
    }
    client.sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 2048];
    let mut answered = 0;
    while client.sock.recv_from(&mut buf).is_ok() {
        answered += 1;
    }
    assert!((6..=7).contains(&answered), "{answered}");

    running.stop();
    let c = running.wait().unwrap().counters;
    assert_eq!(c.violations_interval, 3);
    assert_eq!(c.violations_rate, 16 - answered as u64);
    assert_eq!(c.dropped_limit, c.violations_rate);
}

#[test]
fn manifest_lists_every_torrent_with_its_truth() {
    let cfg = SwarmConfig {
        catalogue: CatalogueConfig {
            torrents: 200,
            holders_max: 3,
        },
        nodes: 500,
        ..config(None, PeerFaults::default())
    };
    let swarm = Swarm::build(cfg, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.jsonl");
    let summary = trawl_swarm::run::write_manifest(&swarm, &path, Duration::from_secs(60)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 200);
    assert_eq!(summary.torrents, 200);
    for (t, l) in lines.iter().enumerate() {
        let t = t as u32;
        assert_eq!(
            l["infohash"].as_str().unwrap(),
            trawl_swarm::run::hex(swarm.catalogue.infohash(t))
        );
        let info = swarm.catalogue.info(t);
        assert_eq!(l["name"].as_str().unwrap(), info.name);
        assert_eq!(l["size"].as_u64().unwrap(), info.total_size());
        let files = l["files"].as_array().unwrap();
        assert_eq!(
            files.iter().map(|f| f["length"].as_u64().unwrap()).sum::<u64>(),
            info.total_size()
        );
        assert_eq!(l["reachable"].as_bool().unwrap(), swarm.reachable(t));
    }
    let reachable = lines.iter().filter(|l| l["reachable"].as_bool().unwrap()).count() as u32;
    assert_eq!(summary.reachable, reachable);
    assert!(reachable > 100 && reachable < 200, "{reachable}");
}

#[test]
fn catalogue_dicts_are_real_info_dicts() {
    let cfg = SwarmConfig {
        catalogue: CatalogueConfig {
            torrents: 300,
            holders_max: 3,
        },
        nodes: 100,
        ..SwarmConfig::default()
    };
    let swarm = Swarm::build(cfg, 2);
    let mut buf = Vec::new();
    for t in 0..300 {
        buf.clear();
        swarm.catalogue.write_info_dict(t, &mut buf);
        assert_eq!(&<[u8; 20]>::from(Sha1::digest(&buf)), swarm.catalogue.infohash(t));
        #[derive(Deserialize)]
        struct Info {
            name: String,
            #[serde(rename = "piece length")]
            piece_length: u64,
            pieces: serde_bytes::ByteBuf,
            length: Option<u64>,
            files: Option<Vec<File>>,
        }
        #[derive(Deserialize)]
        struct File {
            length: u64,
            path: Vec<String>,
        }
        let info: Info = serde_bencode::from_bytes(&buf).unwrap();
        let expected = swarm.catalogue.info(t);
        assert_eq!(info.name, expected.name);
        let total = info.length.unwrap_or(0) + info.files.iter().flatten().map(|f| f.length).sum::<u64>();
        assert_eq!(total, expected.total_size());
        assert!(info.files.iter().flatten().all(|f| !f.path.is_empty()));
        assert_eq!(info.pieces.len() as u64, total.div_ceil(info.piece_length).max(1) * 20);
        // Canonical: re-encoding with sorted keys gives the same bytes, so the hash is stable.
        let v: serde_bencode::value::Value = serde_bencode::from_bytes(&buf).unwrap();
        assert_eq!(serde_bencode::to_bytes(&v).unwrap(), buf);
    }
    let _ = Ipv4Addr::LOCALHOST;
}

#[test]
fn libtorrent_nodes_give_bloom_filters_instead_of_values() {
    let running = start(modelled(ALL_LIBTORRENT), 20);
    let swarm = running.swarm.clone();
    let client = Client::new(running.udp_port());
    let me = client.id;
    // A node holding more than libtorrent's 20 samples, so the sample is a pick.
    let node = (0..NODES)
        .find(|&i| swarm.catalogue.held_by(i).len() > 20)
        .expect("a node holding many torrents");
    assert_eq!(swarm.model(node), NodeModel::Libtorrent);
    let t = swarm.catalogue.held_by(node)[0];
    let info_hash = *swarm.catalogue.infohash(t);
    let name = swarm.catalogue.info(t).name;

    // A scrape: BFsd and BFpe, nodes, token, n, and no values.
    let raw = client.ask(&swarm, node, &get_peers(&me, &info_hash, true)).unwrap();
    let body = independent(&raw).r.unwrap();
    assert!(body.bf_seeds.is_some() && body.bf_peers.is_some());
    assert!(body.values.is_none(), "libtorrent never sends values with a scrape");
    assert_eq!(body.nodes.unwrap().len(), 8 * 26, "libtorrent always sends nodes");
    assert!(body.token.is_some());
    assert_eq!(body.n.unwrap().as_slice(), name.as_bytes());
    let Kind::Response(r) = Message::decode(&raw).unwrap().kind else {
        panic!()
    };
    assert_eq!(r.name, Some(name.as_bytes()), "the project's decoder reads n too");
    // BFpe holds downloaders only, as libtorrent's dht_storage does.
    let mut holders = [0u32; 16];
    let holders = swarm.catalogue.holders(t, &mut holders);
    let downloaders = holders.iter().filter(|&&h| !swarm.is_seed(t, h)).count();
    let mut bf = ScrapeBloom::new();
    for &h in holders.iter().filter(|&&h| !swarm.is_seed(t, h)) {
        bf.insert(swarm.nodes.addr(h).into());
    }
    assert_eq!(
        body.bf_peers.unwrap().as_slice(),
        bf.as_bytes(),
        "{downloaders} downloaders"
    );

    // A plain get_peers: values and nodes and n, no filters.
    let raw = client.ask(&swarm, node, &get_peers(&me, &info_hash, false)).unwrap();
    let body = independent(&raw).r.unwrap();
    assert_eq!(body.values.unwrap().len(), holders.len());
    assert!(body.nodes.is_some() && body.bf_seeds.is_none() && body.bf_peers.is_none());
    assert!(body.n.is_some());
    // A torrent it does not hold (and is not close to): nodes, token, no n.
    let far = (0..swarm.catalogue.len())
        .find(|&u| {
            swarm.catalogue.held_by(node).binary_search(&u).is_err() && {
                let mut c = Vec::new();
                swarm.nodes.closest(swarm.catalogue.infohash(u), 8, &mut c);
                !c.contains(&node)
            }
        })
        .unwrap();
    let raw = client
        .ask(&swarm, node, &get_peers(&me, swarm.catalogue.infohash(far), true))
        .unwrap();
    let body = independent(&raw).r.unwrap();
    assert!(body.values.is_none() && body.bf_peers.is_none() && body.n.is_none());
    assert!(body.nodes.is_some() && body.token.is_some());

    // sample_infohashes: 21,600 s / 360, at most 20, the same pick all interval.
    let raw = client.ask(&swarm, node, &sample(&me)).unwrap();
    let first = independent(&raw).r.unwrap();
    assert_eq!(first.interval, Some(60));
    assert_eq!(first.num, Some(swarm.catalogue.held_by(node).len() as i64));
    assert_eq!(first.samples.as_ref().unwrap().len(), 20 * 20);
    let raw = client.ask(&swarm, node, &sample(&me)).unwrap();
    assert_eq!(independent(&raw).r.unwrap().samples, first.samples);

    running.stop();
    let report = running.wait().unwrap();
    assert_eq!(report.counters.answered_scrape, 1);
    assert_eq!(report.counters.answered_name, 2);
    assert_eq!(report.counters.violations_interval, 1, "the second sample came early");
    assert_eq!((report.bans, report.counters.dropped_budget), (0, 0));
}

#[test]
fn no_bep51_nodes_refuse_samples_and_nat_nodes_never_answer() {
    let mix = ModelMix {
        libtorrent: 0.0,
        no_bep51: 0.5,
        nat: 0.5,
    };
    let running = start(modelled(mix), 20);
    let swarm = running.swarm.clone();
    let client = Client::new(running.udp_port());
    let me = client.id;
    let old = (0..NODES)
        .find(|&i| swarm.model(i) == NodeModel::NoBep51 && swarm.catalogue.held_by(i).len() > 1)
        .unwrap();
    let raw = client.ask(&swarm, old, &sample(&me)).unwrap();
    let e = independent(&raw).e.expect("an error");
    assert_eq!(e.0, 204);
    let t = swarm.catalogue.held_by(old)[0];
    let raw = client
        .ask(&swarm, old, &get_peers(&me, swarm.catalogue.infohash(t), true))
        .unwrap();
    let body = independent(&raw).r.unwrap();
    assert!(
        body.values.is_some() && body.bf_peers.is_none(),
        "no BEP 33: a scrape gets values"
    );

    let nat: Vec<u32> = (0..NODES)
        .filter(|&i| swarm.model(i) == NodeModel::Nat)
        .take(5)
        .collect();
    for &n in &nat {
        assert!(client.ask(&swarm, n, &Query::Ping { id: &me }).is_none());
    }
    // NAT nodes are still listed by the others: they are in the routing tables.
    let target = swarm.nodes.id(nat[0]);
    let raw = client.ask(&swarm, old, &find_node(&me, &target)).unwrap();
    let Kind::Response(r) = Message::decode(&raw).unwrap().kind else {
        panic!()
    };
    let listed: Vec<_> = r.nodes.collect();
    assert_eq!(listed[0].id, target);
    let mut ips: Vec<_> = listed.iter().map(|n| n.addr.ip()).collect();
    ips.dedup();
    assert_eq!(ips.len(), listed.len(), "one entry per IP");
    let manifest_reachable = (0..swarm.catalogue.len()).filter(|&t| swarm.reachable(t)).count();
    assert_eq!(manifest_reachable, 0, "nothing here answers samples");

    running.stop();
    let c = running.wait().unwrap().counters;
    assert_eq!((c.dropped_nat, c.sample_unsupported), (5, 1));
}

#[test]
fn a_sender_above_five_per_second_is_blocked_silently_and_counted() {
    let running = start(modelled(ALL_LIBTORRENT), 20);
    let swarm = running.swarm.clone();
    let client = Client::new(running.udp_port());
    client.sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let me = client.id;
    let answered = (0..60)
        .filter(|_| client.ask(&swarm, 5, &Query::Ping { id: &me }).is_some())
        .count();
    assert_eq!(answered, 49, "the 50th message inside 10 s starts the block");
    // Another node keeps its own blocker.
    assert!(client.ask(&swarm, 6, &Query::Ping { id: &me }).is_some());

    running.stop();
    let report = running.wait().unwrap();
    let c = report.counters;
    assert_eq!((c.bans_imposed, c.ban_seconds, c.dropped_blocked), (1, 300, 11));
    assert_eq!(report.bans, 1);
    assert_eq!(report.bans_by_ip.len(), 1);
    let b = &report.bans_by_ip[0];
    assert_eq!(b.ip, "127.0.0.1");
    assert_eq!(
        (b.record.bans, b.record.blocked_secs, b.record.dropped_blocked),
        (1, 300, 11)
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["bans_by_ip"][0]["blocked_secs"], 300, "flat fields in the report");
    assert_eq!(json["counters"]["bans_imposed"], 1);
}

#[test]
fn the_reply_budget_drops_queries_past_eight_kilobytes() {
    let mut cfg = modelled(ALL_LIBTORRENT);
    cfg.libtorrent.block_ratelimit = 0;
    let running = start(cfg, 20);
    let swarm = running.swarm.clone();
    let client = Client::new(running.udp_port());
    client.sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let me = client.id;
    // 60 queries in one burst: far more than 8,000 bytes of replies at once.
    let to = SocketAddrV4::new(swarm.nodes.addr(9), client.port);
    for i in 0..60u8 {
        let target = [i; 20];
        let mut out = Vec::new();
        krpc::encode_query(&mut out, &[i, i], &find_node(&me, &target), false, None);
        client.sock.send_to(&out, to).unwrap();
    }
    let mut replies = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = client.sock.recv_from(&mut buf) {
        replies.push(n);
    }
    let bytes: usize = replies.iter().sum();
    let last = *replies.last().unwrap();
    assert!(replies.len() < 60, "the budget ran out");
    // Answered while the quota (one second's worth to start, plus the few
    // milliseconds' refill of the burst, under one reply) was above zero.
    assert!(
        bytes >= 8_000 && bytes - last < 8_000 + last,
        "{bytes} bytes in {} replies",
        replies.len()
    );
    running.stop();
    let report = running.wait().unwrap();
    assert_eq!(report.counters.dropped_budget as usize, 60 - replies.len());
    assert_eq!(report.bans, 0);
    assert_eq!(report.bans_by_ip[0].record.dropped_budget as usize, 60 - replies.len());
}

#[test]
fn discoverable_follows_the_samples_within_the_run() {
    let mut cfg = modelled(ModelMix {
        libtorrent: 0.5,
        no_bep51: 0.2,
        nat: 0.3,
    });
    cfg.traits.churn_fraction = 0.44;
    cfg.traits.churn_period_ms = 120_000;
    cfg.never_accept = 0.3;
    let swarm = Swarm::build(cfg, 2);
    let minute = swarm.discoverable(60_000);
    let hour = swarm.discoverable(3_600_000);
    let count = |v: &[bool]| v.iter().filter(|&&b| b).count();
    let reachable = (0..swarm.catalogue.len()).filter(|&t| swarm.reachable(t)).count();
    assert!(
        count(&minute) < count(&hour),
        "{} then {}",
        count(&minute),
        count(&hour)
    );
    assert!(count(&hour) <= reachable);
    assert!(minute.iter().zip(&hour).all(|(&m, &h)| !m || h), "longer runs only add");
    // Everything a minute can show is in the first interval's samples of up nodes.
    let mut shown = vec![false; minute.len()];
    let mut pick = Vec::new();
    for node in 0..swarm.nodes.len() {
        if swarm.model(node) == NodeModel::Libtorrent && swarm.nodes.up_during(node, 0, 60_000) {
            swarm.libtorrent_sample(node, 0, &mut pick);
            assert!(pick.len() <= 20);
            pick.iter().for_each(|&t| shown[t as usize] = true);
        }
    }
    assert_eq!(shown, minute);
    let fetchable = (0..swarm.catalogue.len()).filter(|&t| swarm.fetchable(t)).count();
    assert!(fetchable > 0 && fetchable < swarm.catalogue.len() as usize);
    for t in 0..swarm.catalogue.len() {
        let mut buf = [0u32; 16];
        let served = swarm.catalogue.holders(t, &mut buf).iter().any(|&h| {
            swarm.model(h) != NodeModel::Nat && swarm.peer_accepts(h) && swarm.peer_behaviour(h) == PeerBehaviour::Good
        });
        assert_eq!(swarm.fetchable(t), served);
    }
}

#[test]
fn the_mainline_preset_sets_the_published_mix() {
    let mut cfg = SwarmConfig::preset(Preset::Mainline);
    cfg.nodes = 20_000;
    cfg.catalogue.torrents = 1_000;
    let swarm = Swarm::build(cfg, 2);
    let n = swarm.nodes.len();
    let share = |f: &dyn Fn(u32) -> bool| (0..n).filter(|&i| f(i)).count() as f64 / f64::from(n);
    assert!((share(&|i| swarm.model(i) == NodeModel::Nat) - 0.4).abs() < 0.02);
    assert!((share(&|i| swarm.samples(i)) - 0.3).abs() < 0.02);
    assert_eq!(share(&|i| swarm.model(i) == NodeModel::Fast), 0.0);
    // NAT plus the churning nodes that are away: about half never answer at a time.
    for t in [0, 45_000, 200_000] {
        let silent = share(&|i| !swarm.answers(i, t));
        assert!((silent - 0.53).abs() < 0.03, "{silent} at {t} ms");
    }
    let lt = (0..n).find(|&i| swarm.model(i) == NodeModel::Libtorrent).unwrap();
    assert_eq!(swarm.sample_interval_s(lt), 60, "21,600 s at scale 360");
    let c = &swarm.config;
    assert_eq!(
        (c.libtorrent.upload_rate_limit, c.libtorrent.block_ratelimit),
        (8_000, 5)
    );
    assert_eq!((c.libtorrent.block_timeout_s, c.libtorrent.max_peers_reply), (300, 100));
    assert_eq!(c.traits.churn_period_ms, 120_000);
    assert!((share(&|i| !swarm.peer_accepts(i)) - (0.4 + 0.6 * 0.3)).abs() < 0.02);
    let rtts: Vec<u128> = (0..n).map(|i| swarm.peer_rtt(i).as_millis()).collect();
    assert!(rtts.iter().all(|r| (50..=300).contains(r)));
    assert!(rtts.contains(&50) && rtts.contains(&300));
    // And fast is what it always was.
    let fast = SwarmConfig::preset(Preset::Fast);
    assert_eq!(fast.mix, ModelMix::FAST);
    assert_eq!((fast.never_accept, fast.peer_rtt.max_ms), (0.0, 0));
}

#[test]
fn downloaders_look_up_through_an_answering_crawler_only_where_its_id_is_among_the_closest() {
    use trawl_swarm::answer::{Outcome, Responder};
    use trawl_swarm::counters::Counters;
    use trawl_swarm::downloaders::{DownloadConfig, Outgoing};
    let mut cfg = modelled(ALL_LIBTORRENT);
    cfg.downloads = DownloadConfig {
        lookups_per_node_s: 1.0,
        announce_share: 0.5,
    };
    let swarm = Swarm::build(cfg, 1);
    let mut r = Responder::new(&swarm, 0);
    let mut c = Counters::default();
    // The crawler's id sits next to the most popular torrent (rank 0).
    let popular = *swarm.catalogue.infohash(0);
    let mut crawler_id = popular;
    crawler_id[19] ^= 1;

    // Read-only queriers never enter a table (BEP 43).
    for node in 0..NODES {
        ask_as_crawler(&mut r, &swarm, node, &crawler_id, true, 0, &mut c);
    }
    assert!(swarm.downloads.identities().is_empty());
    for node in 0..NODES {
        ask_as_crawler(&mut r, &swarm, node, &crawler_id, false, 0, &mut c);
    }
    // A second id from the same IP does not replace the first (restrict_routing_ips).
    ask_as_crawler(&mut r, &swarm, 0, &[0x42; 20], false, 0, &mut c);
    let ids = swarm.downloads.identities();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        (ids[0].0, ids[0].1, ids[0].2),
        (SocketAddr::V4(CRAWLER), crawler_id, NODES as usize)
    );

    let mut outbox: Vec<Outgoing> = Vec::new();
    // Two ticks: one tick begins at most 2,000 lookups.
    swarm.downloads.tick(&swarm, 500, &mut c, &mut outbox);
    swarm.downloads.tick(&swarm, 1000, &mut c, &mut outbox);
    assert_eq!(
        c.downloader_lookups,
        u64::from(NODES),
        "one second at one lookup per node"
    );
    assert!(
        !outbox.is_empty(),
        "lookups of the torrent next to the crawler reach it"
    );
    let mut announces = 0;
    for q in &outbox {
        assert_eq!(q.to, CRAWLER);
        let msg = Message::decode(&q.bytes).unwrap();
        let Kind::Query(Query::GetPeers { info_hash, .. }) = msg.kind else {
            panic!("a get_peers: {msg:?}")
        };
        // The crawler's id is closer than the 8th closest answering node.
        let mut closest = Vec::new();
        swarm.nodes.closest(info_hash, 8, &mut closest);
        let kth = xor(&swarm.nodes.id(closest[7]), info_hash);
        assert!(xor(&crawler_id, info_hash) < kth);
        // The crawler answers from its address to the downloader's with a token.
        let mut reply = Vec::new();
        let mut resp = krpc::ResponseOut::new(&crawler_id);
        resp.token = Some(&b"tok1"[..]);
        krpc::encode_response(&mut reply, msg.transaction_id, &resp, None, None);
        let mut out = Vec::new();
        let node = swarm.nodes.index_of(q.from).unwrap();
        match r.handle(1100, CRAWLER, q.from, &reply, &mut out, &mut c) {
            Outcome::Reply => {
                let m = Message::decode(&out).unwrap();
                let Kind::Query(Query::AnnouncePeer {
                    info_hash: announced,
                    token,
                    port,
                    ..
                }) = m.kind
                else {
                    panic!("an announce: {m:?}")
                };
                assert_eq!(
                    (announced, token, port),
                    (info_hash, &b"tok1"[..], swarm.peer_port_of(node))
                );
                let mut holders = [0u32; 16];
                let t = swarm.catalogue.find(info_hash).unwrap();
                assert!(
                    swarm.catalogue.holders(t, &mut holders).contains(&node),
                    "announcers hold the torrent"
                );
                // The announce's acknowledgement ends the lookup.
                let mut ack = Vec::new();
                krpc::encode_response(
                    &mut ack,
                    m.transaction_id,
                    &krpc::ResponseOut::new(&crawler_id),
                    None,
                    None,
                );
                assert_eq!(r.handle(1200, CRAWLER, q.from, &ack, &mut out, &mut c), Outcome::Drop);
                announces += 1;
            }
            Outcome::Drop => {}
            Outcome::ReplyLater => panic!("downloaders do not delay"),
        }
    }
    assert!(
        announces > 0 && announces < outbox.len(),
        "about half announce: {announces} of {}",
        outbox.len()
    );
    assert_eq!(c.downloader_get_peers_answered, outbox.len() as u64);
    assert_eq!(
        (c.downloader_announces_sent, c.downloader_announces_acked),
        (announces as u64, announces as u64)
    );
    let reached = swarm.downloads.reached();
    assert!(reached.iter().any(|(h, x)| *h == popular && x.answered));
    assert!(reached.iter().all(|(_, x)| x.get_peers && x.answered));
    // A reply nobody asked for is counted, not answered.
    let mut stray = Vec::new();
    krpc::encode_response(&mut stray, b"zzzz", &krpc::ResponseOut::new(&crawler_id), None, None);
    let before = c.unexpected;
    let mut out = Vec::new();
    assert_eq!(
        r.handle(1300, CRAWLER, swarm.nodes.addr(1), &stray, &mut out, &mut c),
        Outcome::Drop
    );
    assert_eq!(c.unexpected, before + 1);
}
