//! What the crawl's numbers mean when they stay at zero: a bootstrap that
//! nobody answers, and an answering crawl that nobody queries. Pure logic over
//! snapshots and a clock, so it is tested without a network; `trawl crawl`
//! logs what it says and stops when it gives up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use trawl_engine::ops::CrawlSnapshot;

/// How long a crawl waits for a first answer before it warns.
pub const WARN_AFTER: Duration = Duration::from_secs(10);
/// How long an answering crawl waits for a first unsolicited query.
pub const UNREACHABLE_AFTER: Duration = Duration::from_secs(300);
/// Bootstrap addresses named in a warning; more are counted.
const NAMED: usize = 6;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    Warn(String),
    Info(String),
    /// Nothing answered within the timeout: stop (exit code 6).
    GiveUp(String),
}

pub struct Watch {
    started: Instant,
    /// The addresses asked, and how the user gave them.
    asked: Vec<SocketAddr>,
    given: String,
    timeout: Option<Duration>,
    /// The UDP port, when the crawl answers queries.
    answering_port: Option<u16>,
    port: u16,
    warned: bool,
    answered: bool,
    warned_unreachable: bool,
}

impl Watch {
    /// `given`: the `--bootstrap` entries as typed (empty: the public routers).
    pub fn new(
        started: Instant,
        given: &[String],
        asked: Vec<SocketAddr>,
        timeout: Option<Duration>,
        port: u16,
        answering: bool,
    ) -> Watch {
        let given = if given.is_empty() {
            "the public routers".to_owned()
        } else {
            format!("--bootstrap {}", given.join(", "))
        };
        Watch {
            started,
            asked,
            given,
            timeout,
            answering_port: answering.then_some(port),
            port,
            warned: false,
            answered: false,
            warned_unreachable: false,
        }
    }

    pub fn observe(&mut self, now: Instant, s: &CrawlSnapshot) -> Option<Notice> {
        let waited = now.saturating_duration_since(self.started);
        if !self.answered {
            if s.total(|c| c.replies_received) > 0 {
                self.answered = true;
                return self.warned.then(|| {
                    Notice::Info(format!(
                        "a DHT node answered after {:.0} s; crawling",
                        waited.as_secs_f64()
                    ))
                });
            }
            if let Some(t) = self.timeout.filter(|t| waited >= *t) {
                return Some(Notice::GiveUp(format!(
                    "no DHT node answered within {:.0} s ({}): {}; giving up (--bootstrap-timeout-secs, 0 waits forever)",
                    t.as_secs_f64(),
                    self.tried(s),
                    self.hint()
                )));
            }
            if !self.warned && waited >= WARN_AFTER {
                self.warned = true;
                let until = self.timeout.map_or("waiting without limit".to_owned(), |t| {
                    format!("giving up after {:.0} s", t.as_secs_f64())
                });
                return Some(Notice::Warn(format!(
                    "no DHT node has answered in {:.0} s ({}): {}; retrying with back-off (up to 30 s apart), {until}",
                    waited.as_secs_f64(),
                    self.tried(s),
                    self.hint()
                )));
            }
            return None;
        }
        if let Some(port) = self.answering_port {
            let queried = s.total(|c| c.queries_answered + c.queries_ignored) > 0;
            if !queried && !self.warned_unreachable && waited >= UNREACHABLE_AFTER {
                self.warned_unreachable = true;
                return Some(Notice::Warn(format!(
                    "answering, but no DHT node has sent a query in {:.0} s: UDP port {port} is likely not \
                     reachable from outside (NAT or firewall); forward or open UDP {port}, or run read-only",
                    waited.as_secs_f64()
                )));
            }
        }
        None
    }

    /// What was tried: the addresses, the queries, the errors, the silence.
    fn tried(&self, s: &CrawlSnapshot) -> String {
        let mut named: Vec<String> = self.asked.iter().take(NAMED).map(|a| a.to_string()).collect();
        if self.asked.len() > NAMED {
            named.push(format!("and {} more", self.asked.len() - NAMED));
        }
        let sent = s.total(|c| c.bootstrap_sent);
        let send_errors = s.total(|c| c.send_errors);
        let mut out = format!("asked {} from {}: {sent} find_node sent", named.join(", "), self.given);
        if send_errors > 0 {
            out.push_str(&format!(", {send_errors} send errors"));
        }
        out.push_str(", no reply (timed out)");
        out
    }

    fn hint(&self) -> String {
        format!(
            "check the addresses, that outgoing UDP from port {} is allowed, and for loopback or private \
             addresses --allow-loopback",
            self.port
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trawl_engine::ops::CoreSnapshot;

    fn snap(sent: u64, replies: u64, queries: u64, send_errors: u64) -> CrawlSnapshot {
        CrawlSnapshot {
            cores: vec![CoreSnapshot {
                bootstrap_sent: sent,
                replies_received: replies,
                queries_answered: queries,
                send_errors,
                ..CoreSnapshot::default()
            }],
            ..CrawlSnapshot::default()
        }
    }

    fn watch(t0: Instant, timeout: Option<u64>, answering: bool) -> Watch {
        let asked = vec!["127.0.0.1:9".parse().unwrap(), "10.0.0.1:6881".parse().unwrap()];
        Watch::new(
            t0,
            &["127.0.0.1:9".into(), "boot.example:6881".into()],
            asked,
            timeout.map(Duration::from_secs),
            6881,
            answering,
        )
    }

    #[test]
    fn silence_warns_at_10_s_naming_what_was_tried_and_gives_up_at_the_timeout() {
        let t0 = Instant::now();
        let mut w = watch(t0, Some(60), false);
        assert_eq!(w.observe(t0 + Duration::from_secs(9), &snap(3, 0, 0, 0)), None);
        let Some(Notice::Warn(m)) = w.observe(t0 + Duration::from_secs(10), &snap(5, 0, 0, 2)) else {
            panic!("a warning at 10 s");
        };
        for part in [
            "127.0.0.1:9",
            "10.0.0.1:6881",
            "--bootstrap 127.0.0.1:9, boot.example:6881",
            "5 find_node sent",
            "2 send errors",
            "timed out",
            "port 6881",
            "giving up after 60 s",
        ] {
            assert!(m.contains(part), "{part}: {m}");
        }
        assert_eq!(
            w.observe(t0 + Duration::from_secs(30), &snap(8, 0, 0, 0)),
            None,
            "warned once"
        );
        let Some(Notice::GiveUp(m)) = w.observe(t0 + Duration::from_secs(60), &snap(9, 0, 0, 0)) else {
            panic!("gives up at the timeout");
        };
        assert!(m.contains("--bootstrap-timeout-secs"), "{m}");
    }

    #[test]
    fn a_late_answer_is_reported_and_no_timeout_waits_forever() {
        let t0 = Instant::now();
        let mut w = watch(t0, None, false);
        assert!(
            matches!(w.observe(t0 + Duration::from_secs(11), &snap(4, 0, 0, 0)), Some(Notice::Warn(m)) if m.contains("without limit"))
        );
        assert_eq!(w.observe(t0 + Duration::from_secs(9_999), &snap(40, 0, 0, 0)), None);
        assert!(matches!(
            w.observe(t0 + Duration::from_secs(10_000), &snap(40, 1, 0, 0)),
            Some(Notice::Info(_))
        ));
        // An answer before any warning says nothing.
        let mut w = watch(t0, Some(60), false);
        assert_eq!(w.observe(t0 + Duration::from_secs(2), &snap(1, 1, 0, 0)), None);
        assert_eq!(w.observe(t0 + Duration::from_secs(600), &snap(1, 1, 0, 0)), None);
    }

    #[test]
    fn an_answering_crawl_nobody_queries_names_the_port() {
        let t0 = Instant::now();
        let mut w = watch(t0, Some(60), true);
        assert_eq!(w.observe(t0 + Duration::from_secs(1), &snap(1, 5, 0, 0)), None);
        assert_eq!(w.observe(t0 + Duration::from_secs(299), &snap(1, 5, 0, 0)), None);
        let Some(Notice::Warn(m)) = w.observe(t0 + Duration::from_secs(300), &snap(1, 5, 0, 0)) else {
            panic!("an unreachable warning");
        };
        assert!(m.contains("UDP port 6881") && m.contains("NAT"), "{m}");
        let mut w = watch(t0, Some(60), true);
        w.observe(t0, &snap(1, 5, 0, 0));
        assert_eq!(
            w.observe(t0 + Duration::from_secs(400), &snap(1, 5, 3, 0)),
            None,
            "queried: reachable"
        );
    }
}
