//! Announce tokens (BEP 5): token = SHA-1(secret || requester IP), truncated. The
//! secret rotates every 5 minutes and the previous one is still accepted, so a token
//! lives 5 to 10 minutes. Owns the two secrets; no I/O.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use sha1::{Digest, Sha1};

pub const ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Bytes of SHA-1 we send: enough against guessing, short on the wire.
pub const TOKEN_LEN: usize = 8;
const SECRET_LEN: usize = 16;

#[derive(Clone)]
pub struct Tokens {
    current: [u8; SECRET_LEN],
    previous: [u8; SECRET_LEN],
    rotated_at: Instant,
}

impl Tokens {
    pub fn new(now: Instant, rng: &mut impl Rng) -> Tokens {
        let mut t = Tokens {
            current: [0; SECRET_LEN],
            previous: [0; SECRET_LEN],
            rotated_at: now,
        };
        rng.fill(&mut t.current);
        rng.fill(&mut t.previous);
        t
    }

    pub fn next_rotation(&self) -> Instant {
        self.rotated_at + ROTATE_EVERY
    }

    pub fn rotate_if_due(&mut self, now: Instant, rng: &mut impl Rng) {
        if now >= self.next_rotation() {
            self.previous = self.current;
            rng.fill(&mut self.current);
            self.rotated_at = now;
        }
    }

    pub fn token_for(&self, ip: IpAddr) -> [u8; TOKEN_LEN] {
        make(&self.current, ip)
    }

    pub fn is_valid(&self, ip: IpAddr, token: &[u8]) -> bool {
        token.len() == TOKEN_LEN && (token == make(&self.current, ip) || token == make(&self.previous, ip))
    }
}

fn make(secret: &[u8; SECRET_LEN], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let digest = h.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn tokens_bind_to_ip_and_survive_exactly_one_rotation() {
        let t0 = Instant::now();
        let mut rng = SmallRng::seed_from_u64(9);
        let mut tokens = Tokens::new(t0, &mut rng);
        let ip: IpAddr = "127.0.0.5".parse().unwrap();
        let other: IpAddr = "127.0.0.6".parse().unwrap();
        let tok = tokens.token_for(ip);
        assert!(tokens.is_valid(ip, &tok));
        assert!(!tokens.is_valid(other, &tok));
        assert!(!tokens.is_valid(ip, &tok[..4]));
        tokens.rotate_if_due(t0 + ROTATE_EVERY - Duration::from_secs(1), &mut rng);
        assert_eq!(tokens.token_for(ip), tok, "not rotated before 5 minutes");
        tokens.rotate_if_due(t0 + ROTATE_EVERY, &mut rng);
        assert_ne!(tokens.token_for(ip), tok);
        assert!(tokens.is_valid(ip, &tok), "previous secret still accepted");
        tokens.rotate_if_due(t0 + 2 * ROTATE_EVERY, &mut rng);
        assert!(!tokens.is_valid(ip, &tok), "two rotations later it is gone");
    }
}
