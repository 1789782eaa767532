//! `trawl doctor`: checks a host before a long crawl: the UDP port, NAT,
//! open-file and locked-memory limits, socket buffers against the kernel's
//! maxima, disk space against the expected growth, and the clock. Each check
//! prints one line with its verdict and, when it is not ok, the fix. Exit 0
//! unless a check failed (a crawl would not start or would be crippled).
//!
//! The judgements are pure functions of the readings, tested here; only
//! [`read`] touches the system.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use trawl_engine::ops::limits::{self, judge, Resource, Rlimit, Verdict};
use trawl_engine::runtime::fetch::FetchConfig;

use super::stats::human_bytes;

pub const EXAMPLES: &str = "\
Examples:
  trawl doctor --db /var/lib/trawl/db --port 6881
  trawl doctor --json | jq '.[] | select(.verdict != \"ok\")'
Exit code 0 when nothing failed (warnings included), 1 when a check failed.";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Database directory the crawl will use (its disk is checked).
    #[arg(long, value_name = "DIR", default_value = "trawl-db")]
    pub db: PathBuf,
    /// UDP port the crawl will use.
    #[arg(long, default_value_t = 6881)]
    pub port: u16,
    /// Local IPv4 address the crawl will bind.
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub bind: Ipv4Addr,
    /// Cores the crawl will run [default: all].
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// New infohashes per second to plan disk space for.
    #[arg(long, value_name = "N", default_value_t = 200.0)]
    pub expect_hashes_per_s: f64,
    /// Print one JSON array instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict3 {
    Ok,
    Warn,
    Fail,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict3,
    pub detail: String,
    /// What to do, when the verdict is not ok.
    pub fix: Option<String>,
}

fn check(name: &'static str, verdict: Verdict3, detail: String, fix: Option<String>) -> Check {
    Check {
        name,
        verdict,
        detail,
        fix,
    }
}

/// What `read` found on this host.
#[derive(Clone, Debug)]
pub struct Readings {
    pub port: u16,
    /// `Err` text when the UDP port could not be bound.
    pub bind: Result<(), String>,
    /// The host's IPv4 addresses (loopback left out).
    pub v4: Vec<Ipv4Addr>,
    pub nofile: Option<Rlimit>,
    pub nofile_needed: u64,
    pub memlock: Option<Rlimit>,
    pub memlock_needed: u64,
    /// `net.core.*` sysctls: (name, value, recommended minimum, why).
    pub sysctls: Vec<(&'static str, Option<u64>, u64, &'static str)>,
    /// Free bytes on the database's file system, and where that was measured.
    pub disk_free: Option<(u64, PathBuf)>,
    pub hashes_per_s: f64,
    /// The kernel's view of the clock: synchronised (NTP) and its error bound.
    pub clock_synced: Option<bool>,
    pub clock_maxerror_us: Option<i64>,
}

/// The socket-buffer sysctls `scripts/tune-kernel.sh` sets, with its minimums.
pub const SYSCTLS: [(&str, u64, &str); 3] = [
    (
        "net.core.rmem_max",
        16 << 20,
        "trawl asks for 4 MiB receive buffers; bursts of replies beyond the cap are dropped unread",
    ),
    (
        "net.core.wmem_max",
        8 << 20,
        "a small send buffer makes bursts of queries fail with ENOBUFS",
    ),
    (
        "net.core.netdev_max_backlog",
        65_536,
        "packets beyond it are dropped between the NIC and the socket",
    ),
];
/// Bytes a crawl stores per new infohash, all included (bench/RESULTS.md:
/// 28 B of index at 100M hashes, plus queue entries and torrents for the
/// few percent that get metadata at about 1 KB each in `files` mode).
pub const BYTES_PER_NEW_HASH: f64 = 80.0;
/// Warn below this many days of growth, fail below one.
const DISK_WARN_DAYS: f64 = 30.0;

pub fn judge_all(r: &Readings) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match &r.bind {
        Ok(()) => check("port", Verdict3::Ok, format!("UDP port {} binds", r.port), None),
        Err(e) => check(
            "port",
            Verdict3::Fail,
            format!("UDP port {} cannot be bound: {e}", r.port),
            Some("choose a free port with --port (or stop what holds it)".into()),
        ),
    });
    let public: Vec<_> = r.v4.iter().filter(|ip| is_public(ip)).collect();
    out.push(if public.is_empty() {
        let list = r.v4.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
        check(
            "nat",
            Verdict3::Warn,
            format!(
                "no public IPv4 address on this host ({}): it is behind NAT",
                if list.is_empty() { "none".into() } else { list }
            ),
            Some(format!(
                "a read-only crawl works as is; to answer (--no-read-only) forward UDP {} on the router to this host",
                r.port
            )),
        )
    } else {
        check("nat", Verdict3::Ok, format!("public IPv4 address {}", public[0]), None)
    });
    for (name, limit, needed, fix) in [
        (
            "open files",
            r.nofile,
            r.nofile_needed,
            "ulimit -n, or LimitNOFILE= in the systemd unit",
        ),
        (
            "locked memory",
            r.memlock,
            r.memlock_needed,
            "ulimit -l, or LimitMEMLOCK=infinity in the systemd unit",
        ),
    ] {
        out.push(match limit.map(|l| (l, judge(l, needed))) {
            None => check(name, Verdict3::Warn, "the limit cannot be read".into(), None),
            Some((l, Verdict::Enough)) => check(
                name,
                Verdict3::Ok,
                format!("soft limit {} >= {needed} needed", l.soft),
                None,
            ),
            Some((l, Verdict::RaiseSoft(_))) => check(
                name,
                Verdict3::Ok,
                format!(
                    "soft limit {} < {needed} needed; the crawl raises it (hard limit {})",
                    l.soft, l.hard
                ),
                None,
            ),
            Some((l, Verdict::TooLow)) => check(
                name,
                Verdict3::Fail,
                format!(
                    "hard limit {} < {needed} needed: the crawl would refuse to start",
                    l.hard
                ),
                Some(format!("raise it: {fix}")),
            ),
        });
    }
    for (name, value, want, why) in &r.sysctls {
        out.push(match value {
            None => check(name, Verdict3::Warn, "not readable here".into(), None),
            Some(v) if v >= want => check(name, Verdict3::Ok, format!("{v} >= {want}"), None),
            Some(v) => check(
                name,
                Verdict3::Warn,
                format!("{v} < {want} recommended: {why}"),
                Some("sudo scripts/tune-kernel.sh --apply --persist".into()),
            ),
        });
    }
    out.push(match &r.disk_free {
        None => check("disk", Verdict3::Warn, "free space cannot be read".into(), None),
        Some((free, at)) => {
            let per_day = r.hashes_per_s * BYTES_PER_NEW_HASH * 86_400.0;
            let days = if per_day > 0.0 {
                *free as f64 / per_day
            } else {
                f64::INFINITY
            };
            let detail = format!(
                "{} free at {}; at {:.0} new infohashes/s a crawl grows about {}/day: {:.0} days",
                human_bytes(*free),
                at.display(),
                r.hashes_per_s,
                human_bytes(per_day as u64),
                days
            );
            let fix = Some("free space, move --db to a larger disk, or cap the crawl with --max-disk".into());
            if days < 1.0 {
                check("disk", Verdict3::Fail, detail, fix)
            } else if days < DISK_WARN_DAYS {
                check("disk", Verdict3::Warn, detail, fix)
            } else {
                check("disk", Verdict3::Ok, detail, None)
            }
        }
    });
    out.push(match (r.clock_synced, r.clock_maxerror_us) {
        (Some(true), Some(e)) if e > 1_000_000 => check(
            "clock",
            Verdict3::Warn,
            format!("synchronised, but the error bound is {:.1} s", e as f64 / 1e6),
            Some("check the NTP daemon (timedatectl timesync-status)".into()),
        ),
        (Some(true), _) => check("clock", Verdict3::Ok, "synchronised (NTP)".into(), None),
        (Some(false), _) => check(
            "clock",
            Verdict3::Warn,
            "not synchronised: first/last-seen times and BEP 51 intervals are only as right as the clock".into(),
            Some("enable NTP (timedatectl set-ntp true, or chrony)".into()),
        ),
        (None, _) => check("clock", Verdict3::Warn, "its state cannot be read".into(), None),
    });
    out
}

fn is_public(ip: &Ipv4Addr) -> bool {
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        // 100.64.0.0/10: carrier-grade NAT.
        || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64))
}

/// Reads this host.
pub fn read(args: &Args) -> Readings {
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bind = UdpSocket::bind(SocketAddr::new(IpAddr::V4(args.bind), args.port))
        .map(drop)
        .map_err(|e| e.to_string());
    Readings {
        port: args.port,
        bind,
        v4: local_v4(),
        nofile: Resource::OpenFiles.get().ok(),
        nofile_needed: limits::nofile_needed(cores, cores * FetchConfig::default().concurrency),
        memlock: Resource::LockedMemory.get().ok(),
        memlock_needed: limits::MEMLOCK_MIN_BYTES,
        sysctls: SYSCTLS
            .iter()
            .map(|(name, want, why)| {
                let path = format!("/proc/sys/{}", name.replace('.', "/"));
                (
                    *name,
                    std::fs::read_to_string(path).ok().and_then(|v| v.trim().parse().ok()),
                    *want,
                    *why,
                )
            })
            .collect(),
        disk_free: disk_free(&args.db),
        hashes_per_s: args.expect_hashes_per_s,
        clock_synced: clock().map(|(s, _)| s),
        clock_maxerror_us: clock().map(|(_, e)| e),
    }
}

/// The host's non-loopback IPv4 addresses.
fn local_v4() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() && i32::from(unsafe { (*ifa.ifa_addr).sa_family }) == libc::AF_INET {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            if !ip.is_loopback() {
                out.push(ip);
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Free bytes on the file system holding `db` (or its nearest existing parent).
fn disk_free(db: &Path) -> Option<(u64, PathBuf)> {
    let mut at = db.to_path_buf();
    while !at.exists() {
        at = at.parent().filter(|p| !p.as_os_str().is_empty())?.to_path_buf();
    }
    let c = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills the struct; all-zero is a valid start.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some((s.f_bavail as u64 * s.f_frsize as u64, at))
}

/// adjtimex(2) in read mode: (synchronised, maxerror in µs).
fn clock() -> Option<(bool, i64)> {
    // SAFETY: modes = 0 reads the state into the struct.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        return None;
    }
    Some((
        state != libc::TIME_ERROR && t.status & libc::STA_UNSYNC == 0,
        t.maxerror as i64,
    ))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let checks = judge_all(&read(&args));
    if args.json {
        println!("{}", serde_json::to_string(&checks)?);
    } else {
        for c in &checks {
            let v = match c.verdict {
                Verdict3::Ok => "ok  ",
                Verdict3::Warn => "warn",
                Verdict3::Fail => "FAIL",
            };
            println!("{v}  {:<28} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("      {:<28} fix: {fix}", "");
            }
        }
    }
    let failed = checks.iter().filter(|c| c.verdict == Verdict3::Fail).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} check(s) failed: {}",
            checks
                .iter()
                .filter(|c| c.verdict == Verdict3::Fail)
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Readings {
        Readings {
            port: 6881,
            bind: Ok(()),
            v4: vec![Ipv4Addr::new(203, 0, 114, 7)],
            nofile: Some(Rlimit {
                soft: 1 << 20,
                hard: 1 << 20,
            }),
            nofile_needed: 5_000,
            memlock: Some(Rlimit {
                soft: u64::MAX,
                hard: u64::MAX,
            }),
            memlock_needed: 512 << 10,
            sysctls: SYSCTLS.iter().map(|(n, w, y)| (*n, Some(*w), *w, *y)).collect(),
            disk_free: Some((2 << 40, "/var/lib/trawl".into())),
            hashes_per_s: 200.0,
            clock_synced: Some(true),
            clock_maxerror_us: Some(1_000),
        }
    }

    fn verdict(checks: &[Check], name: &str) -> Verdict3 {
        checks.iter().find(|c| c.name == name).unwrap().verdict
    }

    #[test]
    fn a_healthy_host_is_all_ok() {
        let c = judge_all(&healthy());
        assert!(c.iter().all(|c| c.verdict == Verdict3::Ok && c.fix.is_none()), "{c:#?}");
        assert_eq!(c.len(), 9);
    }

    #[test]
    fn each_problem_is_named_with_its_fix() {
        let mut r = healthy();
        r.bind = Err("Address already in use".into());
        r.v4 = vec![Ipv4Addr::new(192, 168, 1, 5), Ipv4Addr::new(100, 72, 0, 1)];
        r.nofile = Some(Rlimit { soft: 1024, hard: 4096 });
        r.memlock = Some(Rlimit {
            soft: 64 << 10,
            hard: 1 << 30,
        });
        r.sysctls[0].1 = Some(212_992);
        r.disk_free = Some((1 << 30, "/".into()));
        r.clock_synced = Some(false);
        let c = judge_all(&r);
        assert_eq!(verdict(&c, "port"), Verdict3::Fail);
        assert!(c[0].fix.as_ref().unwrap().contains("--port"));
        assert_eq!(verdict(&c, "nat"), Verdict3::Warn);
        assert!(c[1].fix.as_ref().unwrap().contains("forward UDP 6881"), "{:?}", c[1]);
        assert_eq!(verdict(&c, "open files"), Verdict3::Fail);
        assert_eq!(
            verdict(&c, "locked memory"),
            Verdict3::Ok,
            "soft below, hard enough: raised at start"
        );
        assert_eq!(verdict(&c, "net.core.rmem_max"), Verdict3::Warn);
        assert!(c
            .iter()
            .find(|c| c.name == "net.core.rmem_max")
            .unwrap()
            .fix
            .as_ref()
            .unwrap()
            .contains("tune-kernel"));
        // 1 GiB at 200 hashes/s * 80 B = 1.4 GB/day: under a day.
        assert_eq!(verdict(&c, "disk"), Verdict3::Fail);
        assert_eq!(verdict(&c, "clock"), Verdict3::Warn);
        // 20 GiB: about 15 days of growth, under the 30 the check wants.
        r.disk_free = Some((20 << 30, "/".into()));
        assert_eq!(verdict(&judge_all(&r), "disk"), Verdict3::Warn);
    }
}
