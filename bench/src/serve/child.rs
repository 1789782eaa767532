//! A `trawl serve` child process: started on a database, waited for,
//! asked for its document count, stopped with SIGINT, killed if dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use super::queries::Conn;
use crate::sys::{self, ChildGuard, Pid, ProcStat};

pub(super) struct ServeChild {
    guard: ChildGuard,
    pub addr: SocketAddr,
}

/// The trawl binary: `given`, or the one next to this executable.
pub(super) fn trawl_bin(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(std::env::current_exe()?.with_file_name("trawl")),
    }
}

impl ServeChild {
    /// `trawl serve --db DB [--index DIR] --listen ADDR`, logging warnings only.
    pub fn spawn(bin: &Path, db: &Path, index: Option<&Path>, addr: SocketAddr) -> anyhow::Result<ServeChild> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--db")
            .arg(db)
            .args(["--listen", &addr.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(dir) = index {
            cmd.arg("--index").arg(dir);
        }
        let guard = ChildGuard::spawn(&mut cmd).with_context(|| format!("starting {} serve", bin.display()))?;
        Ok(ServeChild { guard, addr })
    }

    /// Waits until it answers `/api/stats`.
    pub fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let end = Instant::now() + within;
        let mut body = Vec::new();
        while Instant::now() < end {
            if let Ok(200) = Conn::new(self.addr).get("/api/stats", &mut body) {
                return Ok(());
            }
            if self.stat().is_err() {
                bail!("trawl serve exited at start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("trawl serve did not answer on {} within {within:?}", self.addr)
    }

    /// Documents in its index now.
    pub fn documents(&self) -> anyhow::Result<u64> {
        let mut body = Vec::new();
        let status = Conn::new(self.addr).get("/api/stats", &mut body)?;
        anyhow::ensure!(status == 200, "trawl serve answered /api/stats with {status}");
        let v: Value = serde_json::from_slice(&body).context("/api/stats is not JSON")?;
        Ok(v.pointer("/index/documents").and_then(Value::as_u64).unwrap_or(0))
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// CPU time and RSS; an error once it is gone.
    pub fn stat(&self) -> std::io::Result<ProcStat> {
        sys::proc_stat(Pid::Other(self.guard.pid()))
    }

    /// SIGINT, then a clean exit within 30 s.
    pub fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill with a valid pid and signal has no memory effects.
        unsafe { libc::kill(self.guard.pid() as libc::pid_t, libc::SIGINT) };
        anyhow::ensure!(
            self.guard.wait_timeout(Duration::from_secs(30))?,
            "trawl serve did not exit cleanly after SIGINT"
        );
        Ok(())
    }
}
