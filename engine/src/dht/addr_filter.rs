//! Which remote addresses we talk to. A standalone filter shared by the node and the
//! crawler: it drops private, loopback, link-local, multicast, documentation and
//! other bogon addresses (IPv4 and IPv6), and port 0, so we never send to ranges a
//! hosting provider would flag and never store an address nobody can reach.
//! Owns no state beyond its switch; must not do I/O or allocate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    PortZero,
    Unspecified,
    Loopback,
    /// RFC 1918, carrier-grade NAT (RFC 6598), IPv6 unique-local.
    Private,
    LinkLocal,
    /// Multicast and broadcast.
    Multicast,
    /// Reserved, documentation, benchmarking or otherwise not publicly routable.
    Bogon,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrFilter {
    /// Let loopback through (tests on 127.0.0.0/8 and ::1); every other
    /// non-public range is still dropped.
    pub allow_loopback: bool,
}

impl AddrFilter {
    pub const fn new(allow_loopback: bool) -> Self {
        AddrFilter { allow_loopback }
    }

    pub fn allows(&self, addr: SocketAddr) -> bool {
        self.check(addr).is_ok()
    }

    pub fn check(&self, addr: SocketAddr) -> Result<(), Rejection> {
        if addr.port() == 0 {
            return Err(Rejection::PortZero);
        }
        self.check_ip(addr.ip())
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Rejection> {
        let verdict = match ip {
            IpAddr::V4(v4) => classify_v4(v4),
            IpAddr::V6(v6) => classify_v6(v6),
        };
        match verdict {
            Err(Rejection::Loopback) if self.allow_loopback => Ok(()),
            other => other,
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Result<(), Rejection> {
    let [a, b, c, _] = ip.octets();
    let v = u32::from(ip);
    let in_net = |net: u32, prefix: u32| (v ^ net) >> (32 - prefix) == 0;
    if v == 0 {
        return Err(Rejection::Unspecified);
    }
    if a == 127 {
        return Err(Rejection::Loopback);
    }
    if a == 10 || in_net(0xac10_0000, 12) || (a == 192 && b == 168) || in_net(0x6440_0000, 10) {
        return Err(Rejection::Private);
    }
    if a == 169 && b == 254 {
        return Err(Rejection::LinkLocal);
    }
    if (224..240).contains(&a) || v == u32::MAX {
        return Err(Rejection::Multicast);
    }
    let bogon = a == 0                                  // "this network"
        || a >= 240                                     // reserved
        || (a == 192 && b == 0 && (c == 0 || c == 2))   // IETF protocol, TEST-NET-1
        || (a == 192 && b == 88 && c == 99)             // deprecated 6to4 relay anycast
        || in_net(0xc612_0000, 15)                      // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100)            // TEST-NET-2
        || (a == 203 && b == 0 && c == 113); // TEST-NET-3
    if bogon {
        return Err(Rejection::Bogon);
    }
    Ok(())
}

fn classify_v6(ip: Ipv6Addr) -> Result<(), Rejection> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip.is_unspecified() {
        return Err(Rejection::Unspecified);
    }
    if ip.is_loopback() {
        return Err(Rejection::Loopback);
    }
    let s = ip.segments();
    if s[0] & 0xff00 == 0xff00 {
        return Err(Rejection::Multicast);
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return Err(Rejection::LinkLocal);
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return Err(Rejection::Private);
    }
    // Only 2000::/3 is allocated global unicast; inside it, carve out the
    // documentation, benchmarking and ORCHID ranges.
    let global = s[0] & 0xe000 == 0x2000;
    let special = (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0)
        || (s[0] == 0x2001 && s[1] & 0xfff0 == 0x0010)
        || (s[0] == 0x2001 && s[1] & 0xfff0 == 0x0020)
        || s[0] & 0xfff0 == 0x3ff0; // 3fff::/20 documentation (RFC 9637)
    if !global || special {
        return Err(Rejection::Bogon);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 6881)
    }

    #[test]
    fn public_addresses_pass() {
        let f = AddrFilter::new(false);
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "67.215.246.10",
            "100.63.255.255",
            "172.32.0.1",
            "198.20.0.1",
            "2001:4860::8888",
            "2a00:1450::1",
            "::ffff:8.8.4.4",
        ] {
            assert_eq!(f.check(v4(s)), Ok(()), "{s}");
        }
    }

    #[test]
    fn non_public_addresses_are_dropped_with_a_reason() {
        let f = AddrFilter::new(false);
        let cases = [
            ("0.0.0.0", Rejection::Unspecified),
            ("127.0.0.1", Rejection::Loopback),
            ("127.9.8.7", Rejection::Loopback),
            ("10.1.2.3", Rejection::Private),
            ("172.16.0.1", Rejection::Private),
            ("172.31.255.255", Rejection::Private),
            ("192.168.1.1", Rejection::Private),
            ("100.64.0.1", Rejection::Private),
            ("169.254.1.1", Rejection::LinkLocal),
            ("224.0.0.1", Rejection::Multicast),
            ("239.255.255.250", Rejection::Multicast),
            ("255.255.255.255", Rejection::Multicast),
            ("0.1.2.3", Rejection::Bogon),
            ("240.0.0.1", Rejection::Bogon),
            ("192.0.2.7", Rejection::Bogon),
            ("198.51.100.7", Rejection::Bogon),
            ("203.0.113.7", Rejection::Bogon),
            ("198.18.0.1", Rejection::Bogon),
            ("::", Rejection::Unspecified),
            ("::1", Rejection::Loopback),
            ("fe80::1", Rejection::LinkLocal),
            ("fd12:3456::1", Rejection::Private),
            ("ff02::1", Rejection::Multicast),
            ("2001:db8::1", Rejection::Bogon),
            ("3fff::1", Rejection::Bogon),
            ("100::1", Rejection::Bogon),
            ("::ffff:192.168.0.1", Rejection::Private),
        ];
        for (s, why) in cases {
            assert_eq!(f.check(v4(s)), Err(why), "{s}");
        }
        assert_eq!(f.check("8.8.8.8:0".parse().unwrap()), Err(Rejection::PortZero));
    }

    #[test]
    fn allow_loopback_lets_only_loopback_through() {
        let f = AddrFilter::new(true);
        assert!(f.allows(v4("127.0.0.1")));
        assert!(f.allows(v4("127.200.3.4")));
        assert!(f.allows(v4("::1")));
        assert!(!f.allows(v4("10.0.0.1")));
        assert!(!f.allows(v4("169.254.0.1")));
        assert!(!f.allows(v4("0.0.0.0")));
        assert!(!f.allows("127.0.0.1:0".parse().unwrap()));
    }
}
