//! The `trawl crawl` child process of a macro benchmark: how it is started on
//! a temporary database, pinned, measured over a window, and stopped.

use super::*;

/// How to start a `trawl crawl` child against the swarm.
pub(crate) struct TrawlSpawn<'a> {
    /// The trawl binary (default: next to this executable).
    pub bin: Option<&'a std::path::Path>,
    pub port: u16,
    pub cores: usize,
    pub bootstrap: SocketAddrV4,
    /// Its own `--duration`, a bound in case this process cannot stop it.
    pub max_secs: f64,
    pub fetchers: usize,
    pub no_fetch: bool,
    /// Pin the whole process to this core (and turn trawl's own pinning off).
    pub pin: Option<usize>,
    pub extra_args: &'a [String],
}

/// A running `trawl crawl` on a temporary database, killed if dropped.
pub(crate) struct TrawlChild {
    pub(super) guard: ChildGuard,
    pub(super) summary: Arc<Mutex<Option<Value>>>,
    pub(super) reader: Option<std::thread::JoinHandle<()>>,
    pub(super) db: PathBuf,
    pub(super) _dir: tempfile::TempDir,
}

impl TrawlChild {
    pub(crate) fn spawn(o: &TrawlSpawn<'_>) -> anyhow::Result<Self> {
        let bin = match o.bin {
            Some(p) => p.to_path_buf(),
            None => std::env::current_exe()?.with_file_name("trawl"),
        };
        let dir = tempfile::tempdir().context("temporary database directory")?;
        let db = dir.path().join("crawl.rocksdb");
        let mut cmd = Command::new(&bin);
        cmd.arg("crawl")
            .arg("--db")
            .arg(&db)
            .args(["--port", &o.port.to_string()])
            .args(["--cores", &o.cores.to_string()])
            .args(["--bootstrap", &o.bootstrap.to_string()])
            .args(["--duration", &o.max_secs.ceil().to_string()])
            .args(["--allow-loopback", "--no-ipv6"])
            .args(["--fetch-concurrency", &o.fetchers.max(1).to_string()])
            .args(o.extra_args)
            .stdout(Stdio::piped());
        if o.no_fetch {
            cmd.arg("--no-fetch");
        }
        if let Some(core) = o.pin {
            pin_child(&mut cmd, core);
            cmd.arg("--no-pin");
        }
        let mut guard = ChildGuard::spawn(&mut cmd).with_context(|| format!("starting {}", bin.display()))?;
        let stdout = guard.child_mut().stdout.take().context("no stdout")?;
        let summary = Arc::new(Mutex::new(None));
        let summary2 = summary.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v.get("crawl").and_then(Value::as_str) == Some("summary") {
                        *summary2.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
                    }
                }
            }
        });
        Ok(Self {
            guard,
            summary,
            reader: Some(reader),
            db,
            _dir: dir,
        })
    }

    /// CPU time and RSS; an error once the process is gone.
    pub(crate) fn stat(&self) -> std::io::Result<sys::ProcStat> {
        self.guard.stat()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub(crate) fn db(&self) -> &std::path::Path {
        &self.db
    }

    /// Whether the process is still running (not exited, not crashed).
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.guard.child_mut().try_wait(), Ok(None))
    }

    /// SIGINT, then its summary line and whether it exited cleanly.
    pub(crate) fn stop(&mut self) -> anyhow::Result<(Value, bool)> {
        // SAFETY: kill with a valid pid and signal has no memory effects.
        unsafe { libc::kill(self.guard.pid() as libc::pid_t, libc::SIGINT) };
        let clean = self.guard.wait_timeout(Duration::from_secs(60))?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let summary = self.summary.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok((summary.unwrap_or(Value::Null), clean))
    }
}

/// One crawl measured over `secs` from its first query to the swarm: the
/// swarm's stats lines and the child's `/proc` at both ends, then SIGINT and
/// the crawl's summary (an error if it did not exit cleanly).
pub(crate) struct Window {
    pub opened: Value,
    pub closed: Value,
    pub first: sys::ProcStat,
    pub last: sys::ProcStat,
    pub summary: Value,
}

pub(crate) fn crawl_window(child: &mut TrawlChild, swarm: &SwarmChild, secs: f64) -> anyhow::Result<Window> {
    let opened = wait_for_traffic(swarm, Duration::ZERO)?;
    let first = child.stat().context("reading the crawler's /proc entry")?;
    let start = Instant::now();
    let mut last = first;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        std::thread::sleep(Duration::from_millis(200));
        last = child.stat().context("trawl crawl exited before its run ended")?;
    }
    let closed = swarm.latest_stats()?;
    let (summary, clean) = child.stop()?;
    if !clean {
        bail!("trawl crawl did not exit cleanly after SIGINT: {summary}");
    }
    Ok(Window {
        opened,
        closed,
        first,
        last,
        summary,
    })
}

/// Waits until the swarm sees the crawler's queries (start-up and database
/// open are over), then `warmup` more; returns the stats line that opens the window.
pub(crate) fn wait_for_traffic(swarm: &SwarmChild, warmup: Duration) -> anyhow::Result<Value> {
    let first = swarm.latest_stats()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = swarm.latest_stats()?;
        if stat_delta(&now, &first, "received") > 0.0 {
            break;
        }
        if Instant::now() >= deadline {
            bail!("trawl crawl sent nothing to the swarm within 60 s");
        }
    }
    std::thread::sleep(warmup);
    swarm.latest_stats()
}

/// Restricts the child to `core` before it starts, so every thread it spawns
/// inherits the mask.
fn pin_child(cmd: &mut Command, core: usize) {
    use std::os::unix::process::CommandExt;
    // SAFETY: sched_setaffinity on the child itself is async-signal-safe and
    // touches only the stack-local set.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(core, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
