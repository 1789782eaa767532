//! The `trawl-swarm` child process of a macro benchmark: how it is started,
//! its stats lines and its final report.

use super::*;

/// How to start the `trawl-swarm` child.
pub(crate) struct SwarmSpawn {
    /// The trawl-swarm binary (default: next to this executable).
    pub bin: Option<PathBuf>,
    pub nodes: u32,
    pub torrents: u32,
    pub seed: u64,
    pub port: u16,
    pub peer_port: u16,
    pub interval_max: u32,
    /// Per-(IP, node) queries/s (0: off).
    pub rate_limit: f64,
    /// Its own `--duration`; it is normally stopped through stdin first.
    pub max_secs: f64,
    /// Fraction of live nodes that die and come back, each every `churn_period`
    /// s; `None` leaves the preset's.
    pub churn: Option<f64>,
    pub churn_period: Option<f64>,
    /// More `trawl-swarm` arguments, e.g. `--holders-max 1`.
    pub extra_args: Vec<String>,
}

/// The `trawl-swarm` child, its last stats line and its final line.
pub(crate) struct SwarmChild {
    pub(super) guard: ChildGuard,
    pub(super) stdin: Option<ChildStdin>,
    pub(super) ready: Value,
    pub(super) latest: Arc<Mutex<Option<Value>>>,
    pub(super) last_line: Arc<Mutex<Option<Value>>>,
    pub(super) reader: Option<std::thread::JoinHandle<()>>,
}

const STATS_EVERY_S: f64 = 0.1;

impl SwarmChild {
    pub(crate) fn spawn(o: &SwarmSpawn, place: Placement) -> anyhow::Result<Self> {
        let bin = match &o.bin {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("trawl-swarm"),
        };
        let mut cmd = Command::new(&bin);
        cmd.args(["--nodes", &o.nodes.to_string(), "--torrents", &o.torrents.to_string()])
            .args(["--seed", &o.seed.to_string(), "--port", &o.port.to_string()])
            .args(["--peer-port", &o.peer_port.to_string()])
            .args(["--interval-max", &o.interval_max.to_string()])
            .args([
                "--rate-limit",
                &o.rate_limit.to_string(),
                "--duration",
                &o.max_secs.to_string(),
            ])
            .args(o.churn.iter().flat_map(|c| ["--churn".to_string(), c.to_string()]))
            .args(
                o.churn_period
                    .iter()
                    .flat_map(|p| ["--churn-period".to_string(), p.to_string()]),
            )
            .args(["--stats-every", &STATS_EVERY_S.to_string(), "--stop-on-eof"])
            // The wire benchmark's swarm, stated rather than left to the binary's
            // default; `--swarm-arg=--preset=mainline` after it overrides.
            .args(["--preset", "fast"])
            .args(&o.extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(core) = place.swarm {
            cmd.args(["--cores", &core.to_string(), "--peer-core", &core.to_string()]);
        }
        let mut guard = ChildGuard::spawn(&mut cmd).with_context(|| format!("starting {}", bin.display()))?;
        let stdin = guard.child_mut().stdin.take();
        let stdout = guard.child_mut().stdout.take().context("no stdout")?;
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let latest = Arc::new(Mutex::new(None));
        let last_line = Arc::new(Mutex::new(None));
        let (latest2, last2) = (latest.clone(), last_line.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                match v.get("event").and_then(Value::as_str) {
                    Some("ready") => {
                        let _ = ready_tx.send(v);
                    }
                    Some("stats") => *latest2.lock().unwrap_or_else(|e| e.into_inner()) = Some(v),
                    _ => *last2.lock().unwrap_or_else(|e| e.into_inner()) = Some(v),
                }
            }
        });
        // Start-up hashes the whole catalogue; a million dicts take a while.
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(900))
            .context("trawl-swarm did not become ready")?;
        Ok(Self {
            guard,
            stdin,
            ready,
            latest,
            last_line,
            reader: Some(reader),
        })
    }

    pub(crate) fn udp_port(&self) -> u16 {
        self.ready.get("udp_port").and_then(Value::as_u64).unwrap_or(0) as u16
    }

    /// The next stats line printed after now, so it covers everything sent so far.
    pub(crate) fn latest_stats(&self) -> anyhow::Result<Value> {
        let current = |l: &Mutex<Option<Value>>| l.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let t0 = current(&self.latest).map(|v| stat_f64(&v, "t")).unwrap_or(-1.0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            if let Some(v) = current(&self.latest) {
                if stat_f64(&v, "t") > t0 + STATS_EVERY_S {
                    return Ok(v);
                }
            }
        }
        bail!("trawl-swarm stopped reporting")
    }

    /// Closes its stdin so it stops, and returns its final line.
    pub(crate) fn finish(&mut self) -> anyhow::Result<Value> {
        drop(self.stdin.take());
        let exited = self.guard.wait_timeout(Duration::from_secs(30))?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if !exited {
            bail!("trawl-swarm did not exit cleanly");
        }
        self.last_line
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .context("trawl-swarm printed no final line")
    }
}
