//! A sliding one-minute window of request counts, errors and latencies, for
//! live figures (requests/s, error rate, p50/p99).
//!
//! Sixty one-second slots; each holds a count, an error count and a latency
//! histogram with four bins per octave (percentiles within ~19%).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const SLOTS: usize = 60;
const BINS: usize = 128;
const BINS_PER_OCTAVE: f64 = 4.0;

/// The last minute of one app's traffic.
pub struct Window {
    started: Instant,
    slots: Mutex<Vec<Slot>>,
}

#[derive(Clone)]
struct Slot {
    second: u64,
    requests: u64,
    errors: u64,
    bins: [u32; BINS],
}

impl Slot {
    fn empty(second: u64) -> Self {
        Slot {
            second,
            requests: 0,
            errors: 0,
            bins: [0; BINS],
        }
    }
}

/// Figures over the last minute.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowSummary {
    /// Requests in the window.
    pub requests: u64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Share of requests answered with a 5xx.
    pub error_rate: f64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

impl Window {
    /// An empty window starting now.
    pub fn new() -> Self {
        Window {
            started: Instant::now(),
            slots: Mutex::new((0..SLOTS as u64).map(Slot::empty).collect()),
        }
    }

    fn now_second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Records one request.
    pub fn record(&self, latency: Duration, error: bool) {
        self.record_at(self.now_second(), latency, error);
    }

    fn record_at(&self, second: u64, latency: Duration, error: bool) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut slots[(second % SLOTS as u64) as usize];
        if slot.second != second {
            *slot = Slot::empty(second);
        }
        slot.requests += 1;
        slot.errors += u64::from(error);
        slot.bins[bin(latency)] += 1;
    }

    /// Figures over the last minute.
    pub fn summary(&self) -> WindowSummary {
        self.summary_at(self.now_second())
    }

    fn summary_at(&self, now: u64) -> WindowSummary {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = now.saturating_sub(SLOTS as u64 - 1);
        let mut requests = 0;
        let mut errors = 0;
        let mut bins = [0u64; BINS];
        for slot in slots
            .iter()
            .filter(|s| s.second >= oldest && s.second <= now)
        {
            requests += slot.requests;
            errors += slot.errors;
            for (total, count) in bins.iter_mut().zip(slot.bins.iter()) {
                *total += u64::from(*count);
            }
        }
        if requests == 0 {
            return WindowSummary::default();
        }
        // Over the time actually observed, up to a minute.
        let seconds = (now + 1).min(SLOTS as u64) as f64;
        WindowSummary {
            requests,
            requests_per_second: requests as f64 / seconds,
            error_rate: errors as f64 / requests as f64,
            p50_ms: percentile(&bins, requests, 0.50),
            p99_ms: percentile(&bins, requests, 0.99),
        }
    }
}

/// The histogram bin of a latency: four per octave of microseconds.
fn bin(latency: Duration) -> usize {
    let micros = latency.as_micros().max(1) as f64;
    ((micros.log2() * BINS_PER_OCTAVE) as usize).min(BINS - 1)
}

/// The bin's representative latency in milliseconds (its geometric middle).
fn bin_ms(bin: usize) -> f64 {
    2f64.powf((bin as f64 + 0.5) / BINS_PER_OCTAVE) / 1000.0
}

fn percentile(bins: &[u64; BINS], total: u64, q: f64) -> f64 {
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, count) in bins.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return bin_ms(i);
        }
    }
    bin_ms(BINS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bin() {
        let window = Window::new();
        for i in 1..=100u64 {
            window.record_at(5, Duration::from_millis(i), i > 95);
        }
        let s = window.summary_at(5);
        assert_eq!(s.requests, 100);
        assert!((s.error_rate - 0.05).abs() < 1e-9);
        assert!((40.0..62.0).contains(&s.p50_ms), "{s:?}");
        assert!((85.0..120.0).contains(&s.p99_ms), "{s:?}");
        assert!((s.requests_per_second - 100.0 / 6.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn old_seconds_fall_out() {
        let window = Window::new();
        window.record_at(1, Duration::from_millis(1), false);
        window.record_at(70, Duration::from_millis(1), false);
        assert_eq!(window.summary_at(70).requests, 1);
        assert_eq!(window.summary_at(200).requests, 0);
    }
}
