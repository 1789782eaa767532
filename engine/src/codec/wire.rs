//! Every KRPC wire constant, named once.
//!
//! Owns: dictionary keys, method names, message types, error codes and the sizes
//! of the compact encodings (BEP 5, 32, 33, 42, 43, 51).
//! Must not: hold logic. Decoders and encoders refer to these names so that no
//! magic byte string or size appears anywhere else.

// Top-level message keys (BEP 5, 42, 43).
pub const KEY_TRANSACTION: &[u8] = b"t";
pub const KEY_TYPE: &[u8] = b"y";
pub const KEY_METHOD: &[u8] = b"q";
pub const KEY_ARGS: &[u8] = b"a";
pub const KEY_RESPONSE: &[u8] = b"r";
pub const KEY_ERROR: &[u8] = b"e";
pub const KEY_VERSION: &[u8] = b"v";
/// BEP 42: the requester's compact address, echoed in replies.
pub const KEY_IP: &[u8] = b"ip";
/// BEP 43: the querier is read-only and must not be added to routing tables.
pub const KEY_READ_ONLY: &[u8] = b"ro";

// Values of `y`.
pub const TYPE_QUERY: &[u8] = b"q";
pub const TYPE_RESPONSE: &[u8] = b"r";
pub const TYPE_ERROR: &[u8] = b"e";

// Methods.
pub const METHOD_PING: &[u8] = b"ping";
pub const METHOD_FIND_NODE: &[u8] = b"find_node";
pub const METHOD_GET_PEERS: &[u8] = b"get_peers";
pub const METHOD_ANNOUNCE_PEER: &[u8] = b"announce_peer";
/// BEP 51.
pub const METHOD_SAMPLE_INFOHASHES: &[u8] = b"sample_infohashes";

// Query argument keys.
pub const ARG_ID: &[u8] = b"id";
pub const ARG_TARGET: &[u8] = b"target";
pub const ARG_INFO_HASH: &[u8] = b"info_hash";
pub const ARG_PORT: &[u8] = b"port";
pub const ARG_IMPLIED_PORT: &[u8] = b"implied_port";
pub const ARG_TOKEN: &[u8] = b"token";
/// BEP 33 on `announce_peer`: the announcer is a seed.
pub const ARG_SEED: &[u8] = b"seed";
/// BEP 33 on `get_peers`: ask for the `BFsd`/`BFpe` bloom filters.
pub const ARG_SCRAPE: &[u8] = b"scrape";
/// BEP 33 on `get_peers`: leave seeds out of `values`.
pub const ARG_NOSEED: &[u8] = b"noseed";
/// BEP 32: which address families the querier wants nodes for.
pub const ARG_WANT: &[u8] = b"want";
pub const WANT_V4: &[u8] = b"n4";
pub const WANT_V6: &[u8] = b"n6";

// Response keys.
pub const RESP_ID: &[u8] = b"id";
pub const RESP_NODES: &[u8] = b"nodes";
/// BEP 32.
pub const RESP_NODES6: &[u8] = b"nodes6";
pub const RESP_VALUES: &[u8] = b"values";
pub const RESP_TOKEN: &[u8] = b"token";
/// BEP 51.
pub const RESP_SAMPLES: &[u8] = b"samples";
pub const RESP_INTERVAL: &[u8] = b"interval";
pub const RESP_NUM: &[u8] = b"num";
/// libtorrent: the torrent's name as announcers gave it, in `get_peers`
/// replies (and as an `announce_peer` argument).
pub const RESP_NAME: &[u8] = b"n";
/// BEP 33: bloom filter of seeds.
pub const RESP_BF_SEEDS: &[u8] = b"BFsd";
/// BEP 33: bloom filter of peers (leechers and seeds).
pub const RESP_BF_PEERS: &[u8] = b"BFpe";

// Error codes (BEP 5).
pub const ERROR_GENERIC: i64 = 201;
pub const ERROR_SERVER: i64 = 202;
pub const ERROR_PROTOCOL: i64 = 203;
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

// Sizes.
/// Node ids, targets and info hashes.
pub const ID_LEN: usize = 20;
/// One BEP 51 sample.
pub const SAMPLE_LEN: usize = ID_LEN;
/// BEP 33 bloom filters: 2048 bits.
pub const BLOOM_LEN: usize = 256;
pub const IPV4_LEN: usize = 4;
pub const IPV6_LEN: usize = 16;
pub const PORT_LEN: usize = 2;
/// Compact IPv4 peer: address then port, big-endian.
pub const COMPACT_PEER_V4_LEN: usize = IPV4_LEN + PORT_LEN;
/// Compact IPv6 peer (BEP 32).
pub const COMPACT_PEER_V6_LEN: usize = IPV6_LEN + PORT_LEN;
/// Compact IPv4 node info: id then compact peer.
pub const COMPACT_NODE_V4_LEN: usize = ID_LEN + COMPACT_PEER_V4_LEN;
/// Compact IPv6 node info (BEP 32).
pub const COMPACT_NODE_V6_LEN: usize = ID_LEN + COMPACT_PEER_V6_LEN;

const _: () = assert!(COMPACT_PEER_V4_LEN == 6 && COMPACT_PEER_V6_LEN == 18);
const _: () = assert!(COMPACT_NODE_V4_LEN == 26 && COMPACT_NODE_V6_LEN == 38);
