//! Child processes for the macro benchmarks, and the swarm's process
//! measurement helpers re-exported ([`trawl_swarm::sys`]).
//!
//! Owns: child processes that cannot outlive the benchmark that started them.
//! It must not measure anything itself or print.

use std::io;
use std::process::{Child, Command};
use std::time::Duration;

pub use trawl_swarm::sys::*;

/// A child process that is killed and reaped when dropped, so a failed or
/// interrupted benchmark never leaves a load generator or peer running.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Spawns `cmd`. The child also gets SIGKILL if this process dies first.
    pub fn spawn(cmd: &mut Command) -> io::Result<Self> {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe, the only call made between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(Self { child: cmd.spawn()? })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// CPU time and RSS of the child, read while it still runs.
    pub fn stat(&self) -> io::Result<ProcStat> {
        proc_stat(Pid::Other(self.pid()))
    }

    /// Waits for the child to exit on its own, at most `timeout`; kills it after.
    /// Returns whether it exited by itself with success.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<bool> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if std::time::Instant::now() >= deadline {
                self.kill();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_is_killed_on_drop() {
        let guard = ChildGuard::spawn(Command::new("sleep").arg("30")).unwrap();
        let pid = guard.pid();
        assert!(guard.stat().is_ok());
        drop(guard);
        // Reaped by drop, so its /proc entry is gone.
        assert!(proc_stat(Pid::Other(pid)).is_err());
    }
}
