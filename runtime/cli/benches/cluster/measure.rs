//! The cluster benchmark's measures and figures: scale rounds, write load, wrk runs, CPU
//! samples from `/proc`, failover rounds; medians and formatting.

use crate::hosts::*;
use futures::future::join_all;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub(crate) fn env_count(name: &str, default: usize) -> usize {
    env_or(name, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("{name}: a count"))
}

pub(crate) fn env_duration(name: &str, default: &str) -> Duration {
    humantime::parse_duration(&env_or(name, default))
        .unwrap_or_else(|err| panic!("{name}: a duration like 5s: {err}"))
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `median (min–max)` in milliseconds.
pub(crate) fn spread_ms(values: &[Duration]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort();
    format!(
        "{:.1} ms ({:.1}–{:.1})",
        ms(sorted[sorted.len() / 2]),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    )
}

pub(crate) fn median_f64(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

// 1. Scale to ready.

pub(crate) struct ScaleFigures {
    pub(crate) up: Vec<Duration>,
    pub(crate) up_acknowledged: Vec<Duration>,
    pub(crate) down: Vec<Duration>,
}

pub(crate) async fn scale_rounds(cluster: &Cluster, rounds: usize) -> ScaleFigures {
    let only_one = |here: &[u64]| here.iter().filter(|n| **n > 0).count() == 1;
    let everywhere = |here: &[u64]| here.iter().all(|n| *n >= 1);
    cluster.scale(0, "scaler", 1, json!([])).await;
    cluster
        .wait_here("scaler", "scaler on one host", only_one)
        .await;
    let mut figures = ScaleFigures {
        up: Vec::new(),
        up_acknowledged: Vec::new(),
        down: Vec::new(),
    };
    for round in 0..rounds {
        // Alternate the host that receives the scale request.
        let at = round % 3;
        let started = Instant::now();
        cluster.scale(at, "scaler", 3, json!([])).await;
        let acknowledged = started.elapsed();
        cluster
            .wait_here("scaler", "scaler on three hosts", everywhere)
            .await;
        let up = started.elapsed();
        let started = Instant::now();
        cluster.scale(at, "scaler", 1, json!([])).await;
        cluster
            .wait_here("scaler", "scaler back on one host", only_one)
            .await;
        let down = started.elapsed();
        println!(
            "  round {:>2} (via {}): 1 → 3 ready everywhere {:.1} ms (scale acknowledged after {:.1} ms); 3 → 1 {:.1} ms",
            round + 1,
            cluster.hosts[at].name,
            ms(up),
            ms(acknowledged),
            ms(down)
        );
        figures.up.push(up);
        figures.up_acknowledged.push(acknowledged);
        figures.down.push(down);
    }
    figures
}

// 2. Committed writes.

pub(crate) struct WriteFigures {
    pub(crate) cpu: CpuUse,
    /// Writes acknowledged.
    pub(crate) writes: u64,
    pub(crate) writes_per_second: f64,
    pub(crate) p50: Duration,
    pub(crate) max: Duration,
    pub(crate) errors: u64,
}

pub(crate) async fn write_load(
    cluster: &Cluster,
    at: usize,
    writers: usize,
    duration: Duration,
    label: &str,
) -> WriteFigures {
    let addr = cluster.hosts[at].admin;
    let pids = cluster.pids();
    let cpu = CpuSample::take(&pids);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let token = cluster.token.clone();
            let label = label.to_string();
            tokio::spawn(async move {
                let mut conn = Conn::new(addr);
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline && errors < 1000 {
                    n += 1;
                    let body = json!({ "name": format!("{label}-{writer}-{n}") }).to_string();
                    let sent = Instant::now();
                    match conn.send("POST", "/v1/tenants", &token, body.into()).await {
                        Ok((status, _)) if (200..300).contains(&status) => {
                            latencies.push(sent.elapsed())
                        }
                        Ok((status, body)) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!(
                                    "write refused: {status} {}",
                                    String::from_utf8_lossy(&body)
                                );
                            }
                        }
                        Err(err) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("write failed: {err}");
                            }
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in join_all(tasks).await {
        let (mine, failed) = task.expect("writer");
        latencies.extend(mine);
        errors += failed;
    }
    let elapsed = started.elapsed();
    let cpu = cpu.since(&pids);
    latencies.sort();
    WriteFigures {
        cpu,
        writes: latencies.len() as u64,
        writes_per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: latencies
            .get(latencies.len() / 2)
            .copied()
            .unwrap_or_default(),
        max: latencies.last().copied().unwrap_or_default(),
        errors,
    }
}

// 3. wrk.

#[derive(Clone, Debug, Default)]
pub(crate) struct Wrk {
    pub(crate) requests_per_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
}

pub(crate) fn wrk_command(
    gateway: SocketAddr,
    threads: usize,
    connections: usize,
    seconds: u64,
) -> Command {
    let mut command = Command::new("wrk");
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["--latency", "-H", "Host: web.bench.test"])
        .arg(format!("http://{gateway}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs one wrk per `(gateway, connections)` at once; their reports.
pub(crate) fn wrk_at_once(loads: &[(SocketAddr, usize)], threads: usize, seconds: u64) -> Vec<Wrk> {
    let children: Vec<Child> = loads
        .iter()
        .map(|(gateway, connections)| {
            wrk_command(*gateway, threads.min(*connections), *connections, seconds)
                .spawn()
                .expect("wrk (apt-get install wrk)")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("wrk output");
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "wrk failed: {text}");
            parse_wrk(&text)
        })
        .collect()
}

pub(crate) fn parse_wrk(report: &str) -> Wrk {
    let mut wrk = Wrk::default();
    for line in report.lines() {
        let line = line.trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            wrk.requests_per_second = rate.trim().parse().unwrap_or(0.0);
        } else if words.first() == Some(&"50%") {
            wrk.p50_ms = wrk_ms(words[1]);
        } else if words.first() == Some(&"99%") {
            wrk.p99_ms = wrk_ms(words[1]);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            wrk.errors += rest.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            wrk.errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    wrk
}

/// `812.00us`, `1.23ms`, `2.00s` → milliseconds.
pub(crate) fn wrk_ms(text: &str) -> f64 {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => f64::NAN,
    }
}

pub(crate) fn sum_of(runs: &[Wrk]) -> Wrk {
    Wrk {
        requests_per_second: runs.iter().map(|w| w.requests_per_second).sum(),
        // The slowest of the concurrent wrk processes.
        p50_ms: runs.iter().map(|w| w.p50_ms).fold(0.0, f64::max),
        p99_ms: runs.iter().map(|w| w.p99_ms).fold(0.0, f64::max),
        errors: runs.iter().map(|w| w.errors).sum(),
    }
}

pub(crate) fn median_wrk(runs: &[Wrk]) -> Wrk {
    let pick = |f: fn(&Wrk) -> f64| median_f64(&runs.iter().map(f).collect::<Vec<_>>());
    Wrk {
        requests_per_second: pick(|w| w.requests_per_second),
        p50_ms: pick(|w| w.p50_ms),
        p99_ms: pick(|w| w.p99_ms),
        errors: runs.iter().map(|w| w.errors).sum(),
    }
}

pub(crate) fn fmt_wrk(w: &Wrk) -> String {
    format!(
        "{:>9.0} req/s; p50 {:.3} ms, p99 {:.3} ms; errors {}",
        w.requests_per_second, w.p50_ms, w.p99_ms, w.errors
    )
}

/// CPU time of the hosts (`/proc/PID/stat`, clock ticks) and of the
/// machine (`/proc/stat`) at one moment.
pub(crate) struct CpuSample {
    pub(crate) at: Instant,
    pub(crate) hosts: Vec<u64>,
    /// Bytes each host caused to be written to storage (`/proc/PID/io`).
    pub(crate) written: Vec<u64>,
    pub(crate) busy: u64,
    pub(crate) total: u64,
}

/// Clock ticks per second of `/proc` figures (`getconf CLK_TCK`; 100 on
/// Linux x86-64).
pub(crate) const CLOCK_TICKS: f64 = 100.0;

impl CpuSample {
    pub(crate) fn take(pids: &[u32]) -> CpuSample {
        let hosts = pids
            .iter()
            .map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // Fields after the command name: state is field 3, utime 14, stime 15.
                let fields: Vec<u64> = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| rest)
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(|f| f.parse().unwrap_or(0))
                    .collect();
                fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
            })
            .collect();
        let written = pids
            .iter()
            .map(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/io"))
                    .unwrap_or_default()
                    .lines()
                    .find_map(|line| line.strip_prefix("write_bytes:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            })
            .collect();
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is in user).
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
        CpuSample {
            at: Instant::now(),
            hosts,
            written,
            busy: total - idle,
            total,
        }
    }

    /// Cores used by each host and the machine's busy share since `self`.
    pub(crate) fn since(&self, pids: &[u32]) -> CpuUse {
        let now = CpuSample::take(pids);
        let seconds = self.at.elapsed().as_secs_f64();
        CpuUse {
            cores: now
                .hosts
                .iter()
                .zip(&self.hosts)
                .map(|(after, before)| after.saturating_sub(*before) as f64 / CLOCK_TICKS / seconds)
                .collect(),
            written: now
                .written
                .iter()
                .zip(&self.written)
                .map(|(after, before)| after.saturating_sub(*before))
                .collect(),
            busy: now.busy.saturating_sub(self.busy) as f64
                / now.total.saturating_sub(self.total).max(1) as f64,
        }
    }
}

/// CPU used over a wrk run.
#[derive(Clone, Debug, Default)]
pub(crate) struct CpuUse {
    /// Cores used by each host.
    pub(crate) cores: Vec<f64>,
    /// Bytes each host wrote to storage.
    pub(crate) written: Vec<u64>,
    /// The machine's busy share (every process, wrk included).
    pub(crate) busy: f64,
}

impl CpuUse {
    /// CPU time of the three hosts per request, in microseconds.
    pub(crate) fn per_request_us(&self, wrk: &Wrk) -> f64 {
        self.cores.iter().sum::<f64>() * 1e6 / wrk.requests_per_second
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cores: Vec<String> = NAMES
            .iter()
            .zip(&self.cores)
            .map(|(name, cores)| format!("{name} {cores:.2}"))
            .collect();
        write!(
            f,
            "cores used: {}; machine busy {:.0}%",
            cores.join(", "),
            self.busy * 100.0
        )
    }
}

/// Places `web` as `spread` says and waits until every host's `here` is
/// `expected` and every gateway serves it.
pub(crate) async fn place_web(cluster: &Cluster, spread: Value, expected: [u64; 3]) {
    cluster.scale(0, "web", WEB_INSTANCES, spread).await;
    cluster
        .wait_here("web", "web placed", |here| here == expected)
        .await;
    cluster.wait_served("web").await;
}

pub(crate) struct WrkFigures {
    pub(crate) local: Vec<Wrk>,
    pub(crate) forwarded: Vec<Wrk>,
    pub(crate) spread: Vec<Wrk>,
    /// The hosts' CPU time per request (µs), per round.
    pub(crate) local_us: Vec<f64>,
    pub(crate) forwarded_us: Vec<f64>,
    pub(crate) spread_us: Vec<f64>,
}

pub(crate) async fn wrk_rounds(
    cluster: &Cluster,
    rounds: usize,
    connections: usize,
    seconds: u64,
    warmup: u64,
) -> WrkFigures {
    let mut figures = WrkFigures {
        local: Vec::new(),
        forwarded: Vec::new(),
        spread: Vec::new(),
        local_us: Vec::new(),
        forwarded_us: Vec::new(),
        spread_us: Vec::new(),
    };
    let gateways: Vec<SocketAddr> = cluster.hosts.iter().map(|h| h.gateway).collect();
    // Connections of the three wrk processes of (c): 32 → 11, 11, 10.
    let split: Vec<(SocketAddr, usize)> = (0..3)
        .map(|i| {
            (
                gateways[i],
                connections / 3 + usize::from(i < connections % 3),
            )
        })
        .collect();
    let pids = cluster.pids();
    // wrk's report and the CPU the hosts and the machine used meanwhile.
    let run = |loads: Vec<(SocketAddr, usize)>, threads: usize| {
        tokio::task::block_in_place(|| {
            if warmup > 0 {
                wrk_at_once(&loads, threads, warmup);
            }
            let before = CpuSample::take(&pids);
            let reports = wrk_at_once(&loads, threads, seconds);
            (reports, before.since(&pids))
        })
    };
    let pinned = json!([{ "requirements": { "name": "alpha" }, "weight": 1 }]);
    for round in 0..rounds {
        place_web(cluster, pinned.clone(), [WEB_INSTANCES, 0, 0]).await;
        let (local, local_cpu) = run(vec![(gateways[0], connections)], 2);
        let (forwarded, forwarded_cpu) = run(vec![(gateways[1], connections)], 2);
        place_web(cluster, json!([]), [WEB_INSTANCES / 3; 3]).await;
        let (spread, spread_cpu) = run(split.clone(), 1);
        let (local, forwarded, spread) = (sum_of(&local), sum_of(&forwarded), sum_of(&spread));
        println!("  round {}:", round + 1);
        for (label, wrk, cpu) in [
            ("(a) pinned to alpha, load on alpha:", &local, &local_cpu),
            (
                "(b) pinned to alpha, load on beta: ",
                &forwarded,
                &forwarded_cpu,
            ),
            ("(c) spread, load on all three:     ", &spread, &spread_cpu),
        ] {
            println!(
                "    {label} {}; {cpu}; hosts' CPU per request {:.1} µs",
                fmt_wrk(wrk),
                cpu.per_request_us(wrk)
            );
        }
        figures.local_us.push(local_cpu.per_request_us(&local));
        figures
            .forwarded_us
            .push(forwarded_cpu.per_request_us(&forwarded));
        figures.spread_us.push(spread_cpu.per_request_us(&spread));
        figures.local.push(local);
        figures.forwarded.push(forwarded);
        figures.spread.push(spread);
    }
    figures
}

// 4. Failover.

pub(crate) struct FailoverRound {
    pub(crate) killed: String,
    pub(crate) acknowledged: Duration,
    pub(crate) attempts: usize,
    pub(crate) new_leader_seen: Option<Duration>,
    pub(crate) back: Duration,
}

pub(crate) async fn failover_round(cluster: &mut Cluster, round: usize) -> FailoverRound {
    let leader_at = cluster.wait_stable().await;
    let survivor_at = (leader_at + 1) % 3;
    let (old_leader, _) = cluster.members(survivor_at).await.expect("members");
    let old_leader = old_leader.expect("a leader");
    let killed_name = cluster.hosts[leader_at].name.clone();

    cluster.hosts[leader_at].kill9();
    let killed = Instant::now();

    // Writes through the survivor until one is acknowledged; alongside,
    // the survivor's view of the leader.
    let cluster_ref: &Cluster = cluster;
    let writes = async {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let name = format!("failover-{round}-{attempts}");
            let body = json!({ "name": name }).to_string();
            match cluster_ref
                .api(survivor_at, "POST", "/v1/tenants", body, FAILOVER_ATTEMPT)
                .await
            {
                Ok(_) => return (killed.elapsed(), attempts, name),
                Err(err) => {
                    assert!(
                        killed.elapsed() < FAILOVER_BOUND && attempts < 10_000,
                        "no write acknowledged within {FAILOVER_BOUND:?} of the kill: {err}"
                    );
                }
            }
        }
    };
    let leader_seen = async {
        while killed.elapsed() < FAILOVER_BOUND {
            if let Some((Some(leader), _)) = cluster_ref.members(survivor_at).await
                && leader != old_leader
            {
                return Some(killed.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    };
    let ((acknowledged, attempts, last_write), new_leader_seen) = tokio::join!(writes, leader_seen);

    // Back: restart on the same data directory, then three members seen by
    // it, a linearizable read answered by it, and the write seen.
    let restarted = Instant::now();
    tokio::task::block_in_place(|| cluster.hosts[leader_at].spawn());
    loop {
        let members = cluster.members(leader_at).await;
        let three = members.as_ref().is_some_and(|(leader, hosts)| {
            leader.is_some()
                && hosts.len() == 3
                && hosts
                    .iter()
                    .filter(|h| h.2 == "leader" || h.2 == "voter")
                    .count()
                    == 3
        });
        if three
            && cluster.get(leader_at, "/v1/apps").await.is_ok()
            && let Ok(tenants) = cluster.get(leader_at, "/v1/tenants").await
            && tenants
                .as_array()
                .is_some_and(|list| list.iter().any(|t| t["name"] == last_write.as_str()))
        {
            break;
        }
        if restarted.elapsed() >= SETTLE {
            let mut views = Vec::new();
            for at in 0..3 {
                let view = cluster.get(at, "/v1/nodes").await;
                views.push(format!("{}: {view:?}", cluster.hosts[at].name));
            }
            panic!(
                "{killed_name} not back within {SETTLE:?}: {members:?}; /v1/nodes of each host: {views:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let back = restarted.elapsed();
    FailoverRound {
        killed: killed_name,
        acknowledged,
        attempts,
        new_leader_seen,
        back,
    }
}
