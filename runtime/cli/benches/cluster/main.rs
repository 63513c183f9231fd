//! Cluster benchmark: three real `cloudware up --cluster-listen` hosts
//! (release build, `alpha`, `beta`, `gamma`, each labelled `name=NAME`) on
//! loopback, driven through their admin APIs and gateways.
//!
//! Measures
//! 1. scale to ready on all three hosts: from the start of
//!    `PUT /v1/apps/scaler/scale` (1 → 3 instances, no spread rules) until
//!    every host's status reports `here >= 1`; and back to 1 (until only one
//!    host runs it), timed separately;
//! 2. committed control-plane writes per second (`POST /v1/tenants`, one
//!    raft commit each, acknowledged once committed and applied) from 1, 16
//!    and 64 concurrent writers, sent to the leader's API and to a
//!    follower's (which forwards them to the leader);
//! 3. requests/s of the hello component with `wrk`: (a) the app pinned to
//!    alpha, load on alpha's gateway; (b) the same placement, load on beta's
//!    gateway (every request forwarded to alpha); (c) the app spread over the
//!    three hosts, one wrk per gateway at once (summed). Same total
//!    connections;
//! 4. failover: `kill -9` of the leader, then a write through a surviving
//!    host, retried until acknowledged; the time from the kill to that
//!    acknowledgement (and, polled alongside, until the survivor names a new
//!    leader); the killed host is restarted on its data directory and
//!    waited for (three members, a linearizable read answered, the write
//!    seen) before the next round.
//!
//! Run: `cargo bench -p cloudware-cli --bench cluster`
//! (`BENCH_SCALE_ROUNDS=10`, `BENCH_WRITE_DURATION=3s`,
//! `BENCH_WRITERS=1,16,64`, `BENCH_DURATION=5s`, `BENCH_WARMUP=1s`,
//! `BENCH_CONNECTIONS=32`, `BENCH_ROUNDS=3`, `BENCH_FAILOVER_ROUNDS=5`;
//! `BENCH_SECTIONS=1,2,3,4` picks the measures).
//! Every host's stderr goes to `stderr.log` in its temporary directory
//! (its end is printed if the bench panics).
//!
//! Each host listens for the cluster on a port picked once and kept over
//! restarts, as a deployment with a fixed `--cluster-listen` would.
//! `BENCH_CLUSTER_PORT0=1` uses `127.0.0.1:0` instead: a new cluster address
//! on every restart, which the other hosts learn from the restarted host's
//! raft connections before its `UpdateHostAddrs` commits (see
//! `cloudware_cluster`'s `peers` module).

mod hosts;
mod measure;

use hosts::*;
use measure::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn main() {
    let sections: Vec<u32> = env_or("BENCH_SECTIONS", "1,2,3,4")
        .split(',')
        .map(|n| n.trim().parse().expect("BENCH_SECTIONS: numbers 1-4"))
        .collect();
    let scale_rounds_n = env_count("BENCH_SCALE_ROUNDS", 10).max(1);
    let write_duration = env_duration("BENCH_WRITE_DURATION", "3s");
    let writer_counts: Vec<usize> = env_or("BENCH_WRITERS", "1,16,64")
        .split(',')
        .map(|n| n.trim().parse().expect("BENCH_WRITERS: counts"))
        .collect();
    let wrk_seconds = env_duration("BENCH_DURATION", "5s").as_secs().max(1);
    let warmup_seconds = env_duration("BENCH_WARMUP", "1s").as_secs();
    let connections = env_count("BENCH_CONNECTIONS", 32).max(3);
    let wrk_rounds_n = env_count("BENCH_ROUNDS", 3).max(1);
    let failover_rounds = env_count("BENCH_FAILOVER_ROUNDS", 5).max(1);

    // Outside the runtime, so a panic anywhere drops (kills) the hosts.
    let started = Instant::now();
    let mut cluster = Cluster::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut summary: Vec<String> = Vec::new();
    runtime.block_on(async {
        let leader = cluster.wait_stable().await;
        println!(
            "three hosts up and agreed in {:.1} s; leader {}",
            started.elapsed().as_secs_f64(),
            cluster.hosts[leader].name
        );
        deploy_apps(&cluster).await;

        if sections.contains(&1) {
            println!(
                "1. scale 1 → 3 instances until every host runs one ({scale_rounds_n} rounds)"
            );
            let scale = scale_rounds(&cluster, scale_rounds_n).await;
            summary.push(format!(
                "| scale 1 → 3, until `here ≥ 1` on all three hosts ({} rounds) | {} |",
                scale.up.len(),
                spread_ms(&scale.up)
            ));
            summary.push(format!(
                "| … of which the `PUT …/scale` call | {} |",
                spread_ms(&scale.up_acknowledged)
            ));
            summary.push(format!(
                "| scale 3 → 1, until only one host runs it | {} |",
                spread_ms(&scale.down)
            ));
        }

        if sections.contains(&2) {
            println!("2. committed writes (POST /v1/tenants), {write_duration:?} per figure");
            let leader = cluster.wait_stable().await;
            let follower = (leader + 1) % 3;
            write_load(&cluster, leader, 16, Duration::from_secs(1), "warm").await;
            for (i, writers) in writer_counts.iter().enumerate() {
                let to_leader =
                    write_load(&cluster, leader, *writers, write_duration, &format!("l{i}")).await;
                let to_follower =
                    write_load(&cluster, follower, *writers, write_duration, &format!("f{i}"))
                        .await;
                println!(
                    "  {writers:>3} writers: to the leader ({}) {:.0} writes/s (p50 {:.2} ms, max {:.1} ms, errors {}); to a follower ({}) {:.0} writes/s (p50 {:.2} ms, max {:.1} ms, errors {})",
                    cluster.hosts[leader].name,
                    to_leader.writes_per_second,
                    ms(to_leader.p50),
                    ms(to_leader.max),
                    to_leader.errors,
                    cluster.hosts[follower].name,
                    to_follower.writes_per_second,
                    ms(to_follower.p50),
                    ms(to_follower.max),
                    to_follower.errors
                );
                for (whom, figures) in [("the leader", &to_leader), ("a follower", &to_follower)] {
                    let written: u64 = figures.cpu.written.iter().sum();
                    println!(
                        "      to {whom}: {}; the three hosts wrote {:.0} MiB to storage ({:.1} KiB per committed write)",
                        figures.cpu,
                        written as f64 / 1048576.0,
                        written as f64 / 1024.0 / figures.writes.max(1) as f64
                    );
                }
                summary.push(format!(
                    "| committed writes/s, {writers} writer(s): to the leader / to a follower | {:.0} / {:.0} (p50 {:.2} / {:.2} ms; errors {} / {}) |",
                    to_leader.writes_per_second,
                    to_follower.writes_per_second,
                    ms(to_leader.p50),
                    ms(to_follower.p50),
                    to_leader.errors,
                    to_follower.errors
                ));
            }
        }

        if sections.contains(&3) {
            println!(
                "3. wrk on the hello route, {connections} connections, {wrk_seconds} s ({warmup_seconds} s warm-up), {wrk_rounds_n} rounds"
            );
            let wrk = wrk_rounds(
                &cluster,
                wrk_rounds_n,
                connections,
                wrk_seconds,
                warmup_seconds,
            )
            .await;
            let (a, b, c) = (
                median_wrk(&wrk.local),
                median_wrk(&wrk.forwarded),
                median_wrk(&wrk.spread),
            );
            summary.push(format!(
                "| (a) pinned to alpha, wrk on alpha (local) | {} |",
                fmt_wrk(&a)
            ));
            summary.push(format!(
                "| (b) pinned to alpha, wrk on beta (forwarded) | {} |",
                fmt_wrk(&b)
            ));
            summary.push(format!(
                "| (c) spread over three, wrk on all three gateways | {} |",
                fmt_wrk(&c)
            ));
            summary.push(format!(
                "| ratios b/a, c/a (requests/s) | {:.2}x, {:.2}x |",
                b.requests_per_second / a.requests_per_second,
                c.requests_per_second / a.requests_per_second
            ));
            summary.push(format!(
                "| the three hosts' CPU per request: a / b / c | {:.1} / {:.1} / {:.1} µs |",
                median_f64(&wrk.local_us),
                median_f64(&wrk.forwarded_us),
                median_f64(&wrk.spread_us)
            ));
        }

        if sections.contains(&4) {
            println!("4. failover ({failover_rounds} rounds)");
            let mut failovers = Vec::new();
            for round in 1..=failover_rounds {
                let figures = failover_round(&mut cluster, round).await;
                println!(
                    "  round {round}: killed {} (leader); write acknowledged {:.0} ms after the kill ({} attempt(s)); new leader seen after {}; restarted host back after {:.0} ms",
                    figures.killed,
                    ms(figures.acknowledged),
                    figures.attempts,
                    figures
                        .new_leader_seen
                        .map(|d| format!("{:.0} ms", ms(d)))
                        .unwrap_or_else(|| "—".into()),
                    ms(figures.back)
                );
                failovers.push(figures);
            }
            let acknowledged: Vec<Duration> = failovers.iter().map(|f| f.acknowledged).collect();
            let seen: Vec<Duration> = failovers.iter().filter_map(|f| f.new_leader_seen).collect();
            let back: Vec<Duration> = failovers.iter().map(|f| f.back).collect();
            summary.push(format!(
                "| failover: kill -9 of the leader → a write acknowledged by a survivor ({} rounds) | {} |",
                acknowledged.len(),
                spread_ms(&acknowledged)
            ));
            if !seen.is_empty() {
                summary.push(format!(
                    "| failover: kill -9 → the survivor names a new leader | {} |",
                    spread_ms(&seen)
                ));
            }
            summary.push(format!(
                "| restart of the killed host → back (3 members, linearizable read, latest write) | {} |",
                spread_ms(&back)
            ));
        }
    });

    println!();
    println!("Summary (medians; min–max in brackets)");
    println!("| figure | result |");
    println!("|---|---:|");
    for row in &summary {
        println!("{row}");
    }
    let warnings: Vec<_> = cluster
        .hosts
        .iter()
        .map(|h| (&h.name, h.warnings()))
        .collect();
    let counts: Vec<String> = warnings
        .iter()
        .map(|(name, w)| format!("{name} {}", w.iter().map(|(_, n)| n).sum::<usize>()))
        .collect();
    println!(
        "(WARN/ERROR lines in the hosts' stderr: {}; total run {:.0} s)",
        counts.join(", "),
        started.elapsed().as_secs_f64()
    );
    for (name, warnings) in &warnings {
        for (message, count) in warnings.iter().take(4) {
            println!("  {name}: {count} × {message}");
        }
    }
}

/// The `bench` tenant, the hello package, and the apps `scaler` and `web`
/// (routes `APP.bench.test/`), served by every gateway.
async fn deploy_apps(cluster: &Cluster) {
    cluster
        .api_ok(
            0,
            "POST",
            "/v1/tenants",
            json!({ "name": TENANT }).to_string(),
        )
        .await;
    let package = std::fs::read(cloudware_test_artifacts::HELLO).expect("hello component");
    let pushed = cluster
        .api_ok(0, "POST", &format!("/v1/packages?tenant={TENANT}"), package)
        .await;
    let digest = pushed["digest"].as_str().expect("digest").to_string();
    for app in ["scaler", "web"] {
        let body = json!({ "package": digest, "routes": [format!("{app}.bench.test/")] });
        cluster
            .api_ok(
                0,
                "POST",
                &format!("/v1/apps/{app}/deployments?tenant={TENANT}"),
                body.to_string(),
            )
            .await;
        cluster.wait_served(app).await;
    }
}
