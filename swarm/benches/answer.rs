//! The swarm's own cost per answer, without the kernel: decode, exact
//! closest-node search, politeness bookkeeping and encode, on 100,000 nodes.
//! The macro figure (`trawl-bench crawl`) adds the kernel's send and receive.

use std::net::{Ipv4Addr, SocketAddrV4};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use trawl_engine::codec::krpc::{self, Query, Want};
use trawl_swarm::answer::Responder;
use trawl_swarm::catalogue::CatalogueConfig;
use trawl_swarm::counters::Counters;
use trawl_swarm::nodes::NodeTraitsConfig;
use trawl_swarm::{Swarm, SwarmConfig};

const NODES: u32 = 100_000;
const QUERIES: usize = 1024;

fn swarm() -> Swarm {
    // Every node alive, fast and BEP 51, no loss: each query is answered.
    let traits = NodeTraitsConfig {
        dead_fraction: 0.0,
        slow_fraction: 0.0,
        no_bep51_fraction: 0.0,
        interval_max: 0,
        ..NodeTraitsConfig::default()
    };
    let cfg = SwarmConfig {
        nodes: NODES,
        catalogue: CatalogueConfig {
            torrents: 100_000,
            holders_max: 4,
        },
        traits,
        loss: 0.0,
        ..SwarmConfig::default()
    };
    Swarm::build(cfg, 2)
}

/// Pre-encoded queries with varied targets, so the search is not cached.
fn queries(make: impl Fn(&[u8; 20]) -> Vec<u8>) -> Vec<Vec<u8>> {
    (0..QUERIES as u32)
        .map(|i| {
            let mut target = [0u8; 20];
            target[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            make(&target)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let swarm = swarm();
    let id = [7u8; 20];
    let encode = |q: &Query<'_>| {
        let mut out = Vec::new();
        krpc::encode_query(&mut out, b"tx", q, true, None);
        out
    };
    let find_node = queries(|t| {
        encode(&Query::FindNode {
            id: &id,
            target: t,
            want: Want::default(),
        })
    });
    let sample = queries(|t| {
        encode(&Query::SampleInfohashes {
            id: &id,
            target: t,
            want: Want::default(),
        })
    });
    let get_peers: Vec<Vec<u8>> = (0..QUERIES as u32)
        .map(|i| {
            let h = swarm.catalogue.infohash(i * 7);
            encode(&Query::GetPeers {
                id: &id,
                info_hash: h,
                want: Want::default(),
                scrape: false,
                noseed: false,
            })
        })
        .collect();

    let mut g = c.benchmark_group("swarm_answer");
    g.throughput(Throughput::Elements(1));
    for (name, qs) in [
        ("find_node", &find_node),
        ("sample_infohashes", &sample),
        ("get_peers", &get_peers),
    ] {
        let mut responder = Responder::new(&swarm, 0);
        let (mut out, mut counters) = (Vec::with_capacity(2048), Counters::default());
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let node = (i as u32).wrapping_mul(40_503) % NODES;
                // Senders rotate so the politeness table sees realistic keys.
                let from = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1 + (i % 200) as u8), 6881);
                responder.handle(
                    0,
                    from,
                    swarm.nodes.addr(node),
                    &qs[i % QUERIES],
                    &mut out,
                    &mut counters,
                )
            })
        });
    }
    let mut ids = Vec::with_capacity(8);
    let targets: Vec<[u8; 20]> = (0..QUERIES as u32).map(|i| swarm.nodes.id(i * 13)).collect();
    let mut i = 0usize;
    g.bench_function("closest_8_of_100k", |b| {
        b.iter_batched_ref(
            || {
                i = i.wrapping_add(1);
                targets[i % QUERIES]
            },
            |t| {
                ids.clear();
                swarm.nodes.closest(t, 8, &mut ids);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
