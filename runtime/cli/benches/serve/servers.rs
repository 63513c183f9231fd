//! The three servers under test as child processes: start, probe, read memory, kill.

use super::*;

/// A child process, killed and reaped when dropped (also while unwinding).
pub(crate) struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A long-running child process (a server) with its stderr in a file.
pub(crate) struct ChildGuard {
    pub(crate) child: KillOnDrop,
    /// Where its stderr goes.
    pub(crate) log: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with stdout piped, stdin piped (the bare hyper server
    /// exits when it closes) and stderr appended to `log`.
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let stderr = File::create(&log)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", log.display()));
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
        ChildGuard {
            child: KillOnDrop(child),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Panics, with the process's stderr, if it has exited.
    fn assert_running(&mut self, name: &str) {
        if let Ok(Some(status)) = self.child.0.try_wait() {
            panic!("{name} exited ({status}); stderr:\n{}", self.log_text());
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|err| format!("(unreadable: {err})"))
    }

    /// The first line the process writes to stdout, within `timeout`. The
    /// rest of its stdout is drained in the background so it never blocks.
    fn first_stdout_line(&mut self, name: &str, timeout: Duration) -> String {
        let stdout = self.child.0.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line);
            let _ = sender.send(read.map(|_| line));
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        match receiver.recv_timeout(timeout) {
            Ok(Ok(line)) if !line.is_empty() => line,
            Ok(Ok(_)) => panic!(
                "{name} closed stdout before saying where it listens; stderr:\n{}",
                self.log_text()
            ),
            Ok(Err(err)) => panic!("cannot read the stdout of {name}: {err}"),
            Err(_) => panic!(
                "{name} did not say where it listens within {timeout:?}; stderr:\n{}",
                self.log_text()
            ),
        }
    }
}

/// One server under test.
pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) process: ChildGuard,
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy)]
pub(crate) struct Memory {
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
}

impl Server {
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// `VmRSS` and `VmHWM` from `/proc/PID/status`, if readable.
    pub(crate) fn memory(&self) -> Option<Memory> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.pid())).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|line| line.starts_with(name))?;
            line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    /// Panics unless `GET /` answers 200 with the expected body.
    fn verify(&mut self) {
        self.process.assert_running(self.name);
        match get_root(self.addr) {
            Ok((200, body)) if body == EXPECTED_BODY => {}
            Ok((status, body)) => panic!(
                "{} at {}: GET / answered {status} {body:?}, expected 200 {EXPECTED_BODY:?}",
                self.name, self.addr
            ),
            Err(err) => panic!("{} at {}: GET / failed: {err}", self.name, self.addr),
        }
    }
}

/// Starts every server (wasmtime only if found) and checks each answers.
pub(crate) fn start_servers(scratch: &Path) -> Vec<Server> {
    let mut servers = vec![start_cloudware(scratch)];
    match find_wasmtime() {
        Some(wasmtime) => servers.push(start_wasmtime(&wasmtime, scratch)),
        None => {
            println!(
                "wasmtime serve: skipped: wasmtime CLI not found (cargo install wasmtime-cli --version 48.0.8)"
            );
        }
    }
    servers.push(start_bare_hyper(scratch));
    for server in &mut servers {
        server.verify();
        println!("{}: listening on {}, GET / ok", server.name, server.url());
    }
    println!();
    servers
}

pub(crate) fn start_cloudware(scratch: &Path) -> Server {
    let name = "cloudware serve";
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloudware"));
    command
        .arg("serve")
        .arg(cloudware_test_artifacts::WASIP2_HELLO)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--cache-dir",
        ])
        .arg(scratch.join("cloudware-cache"));
    let mut process = ChildGuard::spawn(command, scratch.join("cloudware.log"));
    // "Serving PATH (sha256:…) on http://ADDR/"
    let line = process.first_stdout_line(name, STARTUP_TIMEOUT);
    let addr = line
        .trim_end()
        .rsplit_once(" on http://")
        .and_then(|(_, rest)| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("{name}: no address in its first line {line:?}"));
    Server {
        name,
        addr,
        process,
    }
}

/// `$WASMTIME`, else `wasmtime` on `$PATH`, else in `$CARGO_HOME/bin` or
/// `~/.cargo/bin`.
pub(crate) fn find_wasmtime() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WASMTIME") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let cargo_homes = [
        std::env::var_os("CARGO_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")),
    ];
    on_path
        .into_iter()
        .chain(
            cargo_homes
                .into_iter()
                .flatten()
                .map(|home| home.join("bin")),
        )
        .map(|dir| dir.join("wasmtime"))
        .find(|candidate| candidate.is_file())
}

pub(crate) fn start_wasmtime(wasmtime: &Path, scratch: &Path) -> Server {
    let name = "wasmtime serve";
    let version = run_bounded(Command::new(wasmtime).arg("--version"), PROBE_TIMEOUT);
    println!("wasmtime: {} ({})", version.trim(), wasmtime.display());

    // wasmtime serve cannot bind port 0 and report it on stdout: take a free
    // port and hand it over (the window for a clash is tiny).
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot find a free port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new(wasmtime);
    command
        .args(["serve", "-Scli", "--addr"])
        .arg(addr.to_string())
        .arg(cloudware_test_artifacts::WASIP2_HELLO);
    let mut process = ChildGuard::spawn(command, scratch.join("wasmtime.log"));
    wait_until_answering(name, addr, &mut process);
    Server {
        name,
        addr,
        process,
    }
}

/// Polls `GET /` until the server answers at all, up to [`STARTUP_TIMEOUT`].
pub(crate) fn wait_until_answering(name: &str, addr: SocketAddr, process: &mut ChildGuard) {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        process.assert_running(name);
        match get_root(addr) {
            Ok(_) => return,
            Err(err) if Instant::now() >= deadline => panic!(
                "{name} did not answer on {addr} within {STARTUP_TIMEOUT:?} ({err}); stderr:\n{}",
                process.log_text()
            ),
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

pub(crate) fn start_bare_hyper(scratch: &Path) -> Server {
    let name = "bare hyper";
    let exe = std::env::current_exe().expect("cannot find this bench's executable");
    let mut command = Command::new(exe);
    command.arg(BARE_HYPER_ARG);
    let mut process = ChildGuard::spawn(command, scratch.join("hyper.log"));
    let line = process.first_stdout_line(name, STARTUP_TIMEOUT);
    let addr = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}: expected an address, got {line:?}"));
    Server {
        name,
        addr,
        process,
    }
}

/// Runs a short command to completion, within `timeout`, returning stdout.
pub(crate) fn run_bounded(command: &mut Command, timeout: Duration) -> String {
    let program = format!("{command:?}");
    let mut child = KillOnDrop(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {program}: {err}")),
    );
    let stdout = drain(child.0.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.0.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => panic!("{program} did not finish within {timeout:?}"),
            Err(err) => panic!("cannot wait for {program}: {err}"),
        }
    };
    let stdout = stdout.join().expect("stdout reader panicked");
    let stderr = stderr.join().expect("stderr reader panicked");
    assert!(
        status.success(),
        "{program} failed ({status}):\n{stdout}{stderr}"
    );
    stdout
}

/// Reads a pipe to its end on a thread.
pub(crate) fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

// ---------------------------------------------------------------------------
// HTTP probe

/// `GET /` over a fresh HTTP/1.1 connection: status and body.
pub(crate) fn get_root(addr: SocketAddr) -> Result<(u16, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start a tokio runtime: {err}"))?;
    runtime.block_on(async {
        tokio::time::timeout(PROBE_TIMEOUT, get_root_async(addr))
            .await
            .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?
    })
}

pub(crate) async fn get_root_async(addr: SocketAddr) -> Result<(u16, String), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| format!("handshake: {err}"))?;
    tokio::spawn(connection);
    let request = http::Request::get("/")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|err| format!("request: {err}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("send: {err}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("body: {err}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

// ---------------------------------------------------------------------------
// Load with wrk
