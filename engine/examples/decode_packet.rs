//! Decode KRPC datagrams with the zero-copy views: every field of the decoded
//! message borrows from the datagram, nothing is copied, and bad input is a
//! typed error with the byte offset where decoding stopped.
//!
//! ```sh
//! cargo run -p trawl-engine --example decode_packet
//! ```

use trawl_engine::codec::krpc::{DecodeError, Kind, Message, Query};

/// One line per message: what it is and what it carries.
fn describe(datagram: &[u8]) -> Result<String, DecodeError> {
    let msg = Message::decode(datagram)?;
    let tid = hex(msg.transaction_id);
    Ok(match msg.kind {
        Kind::Query(q) => match q {
            Query::GetPeers { info_hash, scrape, .. } => {
                format!(
                    "query t={tid} get_peers info_hash={} scrape={scrape} ro={}",
                    hex(info_hash),
                    msg.read_only
                )
            }
            other => format!("query t={tid} {}", String::from_utf8_lossy(other.method())),
        },
        Kind::Response(r) => format!(
            "response t={tid} id={} nodes={} values={} samples={} interval={:?} num={:?}",
            hex(r.id),
            r.nodes.len(),
            r.values.len(),
            r.samples.len(),
            r.interval,
            r.num
        ),
        Kind::Error(e) => format!("error t={tid} {} {}", e.code, String::from_utf8_lossy(e.message)),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A BEP 51 `sample_infohashes` reply: two samples, one node, a 6-hour interval.
fn sample_reply() -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(b"d1:rd2:id20:");
    d.extend_from_slice(&[0xab; 20]);
    d.extend_from_slice(b"8:intervali21600e5:nodes26:");
    d.extend_from_slice(&[0x11; 20]);
    d.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
    d.extend_from_slice(b"3:numi2e7:samples40:");
    d.extend_from_slice(&[0x22; 20]);
    d.extend_from_slice(&[0x33; 20]);
    d.extend_from_slice(b"e1:t2:aa1:y1:re");
    d
}

/// A read-only (BEP 43) BEP 33 scrape.
fn scrape_query() -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(b"d1:ad2:id20:");
    d.extend_from_slice(&[0x44; 20]);
    d.extend_from_slice(b"9:info_hash20:");
    d.extend_from_slice(&[0x55; 20]);
    d.extend_from_slice(b"6:scrapei1ee1:q9:get_peers2:roi1e1:t2:bb1:y1:qe");
    d
}

fn main() {
    for datagram in [
        sample_reply(),
        scrape_query(),
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:cc1:y1:ee".to_vec(),
        b"d1:t2:aa1:y1:r1:rd2:id3:shortee".to_vec(),
    ] {
        match describe(&datagram) {
            Ok(line) => println!("{line}"),
            Err(err) => println!("rejected: {err} (offset {:?})", err.offset()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_decodes_and_garbage_is_a_typed_error() {
        assert_eq!(
            describe(&sample_reply()).unwrap(),
            format!(
                "response t=6161 id={} nodes=1 values=0 samples=2 interval=Some(21600) num=Some(2)",
                "ab".repeat(20)
            )
        );
        assert_eq!(
            describe(&scrape_query()).unwrap(),
            format!(
                "query t=6262 get_peers info_hash={} scrape=true ro=true",
                "55".repeat(20)
            )
        );
        assert_eq!(
            describe(b"d1:eli201e23:A Generic Error Ocurrede1:t2:cc1:y1:ee").unwrap(),
            "error t=6363 201 A Generic Error Ocurred"
        );
        // A node id of 5 bytes is not a KRPC reply.
        assert!(describe(b"d1:t2:aa1:y1:r1:rd2:id5:shortee").is_err());
        assert!(describe(b"d1:t2:aa").is_err());
    }
}
