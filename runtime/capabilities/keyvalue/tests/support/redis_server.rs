//! A throwaway `redis-server` for the Redis backend tests: on a free
//! loopback port, in a temporary directory, without persistence, killed when
//! the guard drops.
//!
//! Without `redis-server` on the `PATH` the tests are skipped, unless the
//! `CI` variable is set: then they fail, saying what to install.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its `redis://` URL.
    pub url: String,
}

impl RedisServer {
    /// Starts a server, or returns `None` (after printing why) when
    /// `redis-server` is not installed and `CI` is not set.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        let Some(binary) = find_on_path("redis-server") else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{test}: `redis-server` is not on the PATH; install it \
                     (Debian: `apt-get install redis-server`) to run the Redis backend tests"
                );
            }
            eprintln!("{test}: skipped, `redis-server` is not on the PATH");
            return None;
        };
        let mut last_error = String::new();
        // A port found free can be taken before the server binds it: retry.
        for _ in 0..3 {
            match Self::start(&binary) {
                Ok(server) => return Some(server),
                Err(err) => last_error = err,
            }
        }
        panic!("{test}: cannot start redis-server: {last_error}");
    }

    fn start(binary: &PathBuf) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let mut server = RedisServer {
            child,
            _dir: dir,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("redis-server exited at start: {status}"));
            }
            if ping(port) {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no answer to PING within {START_TIMEOUT:?}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a Redis server on `port` answers `PING`.
fn ping(port: u16) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply)?;
        Ok(&reply == b"+PONG\r\n")
    };
    attempt().unwrap_or(false)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
