//! Pausing processes with SIGSTOP (all their traffic stops, as in a
//! partition or a hung server) and resuming them with SIGCONT.

use super::wait_until;
use std::process::Command;
use std::time::Duration;

/// Paused processes, resumed (SIGCONT) when dropped.
pub struct Paused {
    pids: Vec<u32>,
}

impl Paused {
    /// Sends SIGSTOP to every `pid` and waits (bounded) until each is stopped.
    pub fn stop(pids: &[u32]) -> Paused {
        let paused = Paused {
            pids: pids.to_vec(),
        };
        for pid in pids {
            signal("STOP", *pid);
        }
        for pid in pids {
            wait_until("the host is stopped", Duration::from_secs(5), || {
                (process_state(*pid) == Some('T')).then_some(())
            });
        }
        paused
    }

    /// Resumes every paused process now.
    pub fn resume(mut self) {
        for pid in std::mem::take(&mut self.pids) {
            signal("CONT", pid);
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        for pid in &self.pids {
            signal("CONT", *pid);
        }
    }
}

fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// The state letter of `/proc/PID/stat` (`T` = stopped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}
