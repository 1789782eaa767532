//! The process limits a crawl needs, checked once at startup so that a limit
//! that is too low fails with one line naming it and the fix, instead of an
//! obscure error from glommio, io_uring or RocksDB minutes later.
//!
//! Owns the thresholds and the decision ([`judge`], pure and tested); the only
//! system calls are `getrlimit`/`setrlimit` in [`check`]. A soft limit below
//! the need is raised up to the hard limit first, as an unprivileged process
//! may; only a hard limit below the need is an error.

use super::OpsError;

/// glommio's reactor refuses to start below this much lockable memory
/// (`MIN_MEMLOCK_LIMIT` in glommio 0.9's `sys/uring.rs`).
pub const MEMLOCK_MIN_BYTES: u64 = 512 * 1024;
/// RocksDB holds up to [`trawl_storage::MAX_OPEN_FILES`] table files open,
/// plus its logs, manifest and compaction outputs, before the crawl opens a
/// single socket.
pub const NOFILE_BASE: u64 = 4096;
const _: () = assert!(NOFILE_BASE >= trawl_storage::MAX_OPEN_FILES as u64 + 1024);
/// Per core: UDP sockets (v4, v6), three io_uring rings, eventfds, timers.
pub const NOFILE_PER_CORE: u64 = 32;

/// One resource limit, as `getrlimit` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub soft: u64,
    pub hard: u64,
}

/// What to do about one limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Enough,
    /// Raise the soft limit to this (never above the hard limit).
    RaiseSoft(u64),
    /// The hard limit itself is below the need.
    TooLow,
}

/// Descriptors a crawl of `cores` cores with `fetch_connections` concurrent
/// metadata connections in total needs.
pub fn nofile_needed(cores: usize, fetch_connections: usize) -> u64 {
    NOFILE_BASE + NOFILE_PER_CORE * cores as u64 + fetch_connections as u64
}

pub fn judge(limit: Rlimit, needed: u64) -> Verdict {
    if limit.soft >= needed {
        Verdict::Enough
    } else if limit.hard >= needed {
        Verdict::RaiseSoft(needed)
    } else {
        Verdict::TooLow
    }
}

/// The message for a hard limit that is too low: which limit, its value, the
/// need, and how to raise it in a shell and under systemd.
pub fn too_low_message(resource: Resource, limit: Rlimit, needed: u64) -> String {
    match resource {
        Resource::OpenFiles => format!(
            "open-file limit too low: RLIMIT_NOFILE is {} (hard {}), this crawl needs {needed}; \
             raise it with `ulimit -n {needed}` (as root, or `nofile` in /etc/security/limits.conf) \
             or `LimitNOFILE=1048576` in the systemd unit",
            show(limit.soft),
            show(limit.hard)
        ),
        Resource::LockedMemory => format!(
            "locked-memory limit too low: RLIMIT_MEMLOCK is {} KiB (hard {} KiB), glommio's io_uring \
             needs {} KiB; raise it with `ulimit -l unlimited` (as root, or `memlock` in \
             /etc/security/limits.conf) or `LimitMEMLOCK=infinity` in the systemd unit",
            show(limit.soft / 1024),
            show(limit.hard / 1024),
            needed / 1024
        ),
    }
}

fn show(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        v.to_string()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    OpenFiles,
    LockedMemory,
}

impl Resource {
    fn id(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::OpenFiles => libc::RLIMIT_NOFILE,
            Resource::LockedMemory => libc::RLIMIT_MEMLOCK,
        }
    }

    pub fn get(self) -> std::io::Result<Rlimit> {
        let mut raw = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `raw` is a valid, writable rlimit for the call.
        if unsafe { libc::getrlimit(self.id(), &mut raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Rlimit {
            soft: raw.rlim_cur,
            hard: raw.rlim_max,
        })
    }

    fn set_soft(self, limit: Rlimit, soft: u64) -> std::io::Result<()> {
        let raw = libc::rlimit {
            rlim_cur: soft,
            rlim_max: limit.hard,
        };
        // SAFETY: `raw` is a valid rlimit; lowering nothing, raising soft <= hard.
        if unsafe { libc::setrlimit(self.id(), &raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Checks (and where the hard limit allows, raises) one limit.
pub fn ensure(resource: Resource, needed: u64) -> Result<(), OpsError> {
    let Ok(limit) = resource.get() else {
        // Cannot read the limit: let the component that needs it report.
        return Ok(());
    };
    match judge(limit, needed) {
        Verdict::Enough => Ok(()),
        Verdict::RaiseSoft(to) => {
            resource.set_soft(limit, to).map_err(|e| OpsError::Limit {
                message: format!("{} (setrlimit failed: {e})", too_low_message(resource, limit, needed)),
            })?;
            tracing::debug!(?resource, from = limit.soft, to, "raised soft limit");
            Ok(())
        }
        Verdict::TooLow => Err(OpsError::Limit {
            message: too_low_message(resource, limit, needed),
        }),
    }
}

/// The startup check for anything that runs glommio executors: `cores`
/// executors and `fetch_connections` metadata connections in total.
pub fn check(cores: usize, fetch_connections: usize) -> Result<(), OpsError> {
    ensure(Resource::LockedMemory, MEMLOCK_MIN_BYTES)?;
    ensure(Resource::OpenFiles, nofile_needed(cores, fetch_connections))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_is_raised_when_hard_allows_and_refused_otherwise() {
        let need = nofile_needed(2, 200);
        assert_eq!(need, 4096 + 64 + 200);
        assert_eq!(
            judge(
                Rlimit {
                    soft: 1 << 20,
                    hard: 1 << 20
                },
                need
            ),
            Verdict::Enough
        );
        assert_eq!(
            judge(
                Rlimit {
                    soft: 1024,
                    hard: 524_288
                },
                need
            ),
            Verdict::RaiseSoft(need)
        );
        assert_eq!(judge(Rlimit { soft: 1024, hard: 4096 }, need), Verdict::TooLow);
        let inf = libc::RLIM_INFINITY;
        assert_eq!(
            judge(
                Rlimit {
                    soft: 64 * 1024,
                    hard: inf
                },
                MEMLOCK_MIN_BYTES
            ),
            Verdict::RaiseSoft(MEMLOCK_MIN_BYTES)
        );
    }

    #[test]
    fn messages_name_the_limit_and_the_fix() {
        let m = too_low_message(Resource::OpenFiles, Rlimit { soft: 1024, hard: 1024 }, 4360);
        for needle in ["RLIMIT_NOFILE is 1024", "needs 4360", "ulimit -n 4360", "LimitNOFILE="] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
        let m = too_low_message(
            Resource::LockedMemory,
            Rlimit {
                soft: 65536,
                hard: 65536,
            },
            MEMLOCK_MIN_BYTES,
        );
        for needle in [
            "RLIMIT_MEMLOCK is 64 KiB",
            "needs 512 KiB",
            "ulimit -l",
            "LimitMEMLOCK=",
        ] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
        assert!(!m.contains('\n'));
    }

    #[test]
    fn this_process_passes_or_says_why() {
        // On the test machines both limits are ample; anywhere else the error
        // must still be the one-line limit message.
        match check(2, 100) {
            Ok(()) => {
                let nofile = Resource::OpenFiles.get().unwrap();
                assert!(nofile.soft >= nofile_needed(2, 100));
            }
            Err(OpsError::Limit { message }) => assert!(message.contains("limit too low"), "{message}"),
            Err(other) => panic!("unexpected {other}"),
        }
    }
}
