//! Printing the figures.

use super::*;

pub(crate) fn print_load_table(results: &[LoadResult]) {
    println!("## Load (medians of the rounds)");
    println!("| server | requests/s | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|");
    for result in results {
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {}{} |",
            result.name,
            result.requests_per_sec,
            result.p50_ms,
            result.p99_ms,
            result.errors,
            if result.errors > 0 { " (flagged)" } else { "" },
        );
    }
    println!();
}

pub(crate) fn print_ratios(results: &[LoadResult]) {
    let find = |name: &str| results.iter().find(|result| result.name == name);
    let cloudware = find("cloudware serve").expect("cloudware was measured");
    println!("## Ratios");
    match find("wasmtime serve") {
        Some(wasmtime) => {
            let throughput = cloudware.requests_per_sec / wasmtime.requests_per_sec;
            let verdict = if throughput >= 1.5 {
                "target 1.5x met"
            } else if throughput >= 1.0 {
                "target 1.5x NOT met, floor 1.0x met"
            } else {
                "BELOW the 1.0x floor"
            };
            println!("cloudware / wasmtime requests/s: {throughput:.2}x ({verdict})");
            println!(
                "cloudware / wasmtime p99 latency: {:.2}x (lower is better)",
                cloudware.p99_ms / wasmtime.p99_ms
            );
        }
        None => println!("cloudware / wasmtime: skipped (wasmtime CLI not found)"),
    }
    if let Some(hyper) = find("bare hyper") {
        println!(
            "cloudware / bare hyper requests/s: {:.2}x",
            cloudware.requests_per_sec / hyper.requests_per_sec
        );
    }
    println!();
}

pub(crate) fn print_instantiation(times: &[(&str, InstantiationTime)]) {
    println!("## Instantiation (instantiate_once, in-process, default config = pooling)");
    for (name, time) in times {
        println!(
            "{name}: median {:.1} µs, p99 {:.1} µs",
            time.median_us, time.p99_us
        );
    }
    println!();
}

pub(crate) fn print_memory(servers: &[Server], memory: &[Option<Memory>]) {
    println!("## Resident memory after the load runs");
    for (server, memory) in servers.iter().zip(memory) {
        match memory {
            Some(memory) => println!(
                "{}: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
                server.name,
                memory.rss_kib as f64 / 1024.0,
                memory.hwm_kib as f64 / 1024.0
            ),
            None => println!("{}: unreadable", server.name),
        }
    }
}

// ---------------------------------------------------------------------------
// The bare hyper server
