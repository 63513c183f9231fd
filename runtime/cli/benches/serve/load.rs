//! Loading the servers with wrk and parsing its report.

use super::*;

/// What one wrk run measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct WrkRun {
    pub(crate) requests_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Socket errors (connect, read, write, timeout).
    pub(crate) socket_errors: u64,
    /// Responses that were neither 2xx nor 3xx.
    pub(crate) bad_responses: u64,
}

impl WrkRun {
    fn errors(&self) -> u64 {
        self.socket_errors + self.bad_responses
    }
}

/// Medians over the rounds of one server.
pub(crate) struct LoadResult {
    pub(crate) name: &'static str,
    pub(crate) requests_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Errors summed over all rounds.
    pub(crate) errors: u64,
}

/// Loads every server in turn, `settings.rounds` times, interleaved.
pub(crate) fn load_servers(servers: &[Server], settings: &Settings) -> Vec<LoadResult> {
    let mut runs: Vec<Vec<WrkRun>> = vec![Vec::new(); servers.len()];
    for round in 1..=settings.rounds {
        for (server, runs) in servers.iter().zip(&mut runs) {
            wrk(&server.url(), &settings.warmup, settings);
            let run = wrk(&server.url(), &settings.duration, settings);
            println!(
                "round {round}/{}: {:<16} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}{}",
                settings.rounds,
                server.name,
                run.requests_per_sec,
                run.p50_ms,
                run.p99_ms,
                run.errors(),
                if run.errors() > 0 { "  (!)" } else { "" },
            );
            runs.push(run);
        }
    }
    println!();
    servers
        .iter()
        .zip(runs)
        .map(|(server, runs)| LoadResult {
            name: server.name,
            requests_per_sec: median(runs.iter().map(|run| run.requests_per_sec)),
            p50_ms: median(runs.iter().map(|run| run.p50_ms)),
            p99_ms: median(runs.iter().map(|run| run.p99_ms)),
            errors: runs.iter().map(WrkRun::errors).sum(),
        })
        .collect()
}

/// One wrk run against `url` for `duration`.
pub(crate) fn wrk(url: &str, duration: &str, settings: &Settings) -> WrkRun {
    let timeout = parse_wrk_duration(duration) + WRK_SLACK;
    let output = run_bounded(
        Command::new("wrk")
            .arg(format!("-t{}", settings.threads))
            .arg(format!("-c{}", settings.connections))
            .arg(format!("-d{duration}"))
            .args(["--latency", url]),
        timeout,
    );
    parse_wrk(&output).unwrap_or_else(|err| panic!("cannot parse wrk's output ({err}):\n{output}"))
}

/// Parses wrk's report (with `--latency`).
pub(crate) fn parse_wrk(output: &str) -> Result<WrkRun, String> {
    let mut requests_per_sec = None;
    let mut p50_ms = None;
    let mut p99_ms = None;
    let mut socket_errors = 0;
    let mut bad_responses = 0;
    for line in output.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            let value = value.trim();
            requests_per_sec = Some(
                value
                    .parse()
                    .map_err(|_| format!("bad Requests/sec {value:?}"))?,
            );
        } else if let Some(value) = line.strip_prefix("50%") {
            p50_ms = Some(parse_latency_ms(value.trim())?);
        } else if let Some(value) = line.strip_prefix("99%") {
            p99_ms = Some(parse_latency_ms(value.trim())?);
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for count in counts.split(',') {
                let number = count.split_whitespace().nth(1);
                socket_errors += number
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| format!("bad socket error count {count:?}"))?;
            }
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            let value = value.trim();
            bad_responses = value
                .parse()
                .map_err(|_| format!("bad non-2xx count {value:?}"))?;
        }
    }
    Ok(WrkRun {
        requests_per_sec: requests_per_sec.ok_or("no `Requests/sec:` line")?,
        p50_ms: p50_ms.ok_or("no `50%` latency line (was --latency passed?)")?,
        p99_ms: p99_ms.ok_or("no `99%` latency line (was --latency passed?)")?,
        socket_errors,
        bad_responses,
    })
}

/// A wrk latency (`403.00us`, `1.14ms`, `2.00s`, `1.00m`) in milliseconds.
pub(crate) fn parse_latency_ms(text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("latency {text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad latency number {text:?}"))?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(format!("unknown latency unit in {text:?}")),
    };
    Ok(value * scale)
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// Instantiation
