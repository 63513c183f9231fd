//! Heartbeats: how this host sees its peers. Every [`HealthConfig::interval`]
//! each host sends `GET /v1/health` to every other host of the replicated
//! registry over the pooled cluster connections (mutual TLS) and records when
//! each last answered and how long the answer took. A host that has not
//! answered for [`HealthConfig::missed`] intervals is down. Liveness is this
//! host's own observation; it is not replicated.

use crate::forward::pool::{PeerPool, PoolBody};
use bytes::Bytes;
use cloudware_node::{ControlPlane, PeerHealth};
use http_body_util::{BodyExt as _, Empty, Limited};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

/// The path of heartbeats on the cluster port.
pub(crate) const HEALTH_PATH: &str = "/v1/health";

/// How often and how patiently peers are checked.
#[derive(Clone, Copy, Debug)]
pub struct HealthConfig {
    /// Time between heartbeats to each host (default 400 ms).
    pub interval: Duration,
    /// Bound of one heartbeat, connecting included (default 300 ms; below the interval
    /// so rounds never overlap).
    pub timeout: Duration,
    /// Intervals without an answer after which a host is down (default 3: down within
    /// about 1.2 s of its last answer).
    pub missed: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_millis(400),
            timeout: Duration::from_millis(300),
            missed: 3,
        }
    }
}

impl HealthConfig {
    /// How long after its last answer a host counts as down.
    pub fn down_after(&self) -> Duration {
        self.interval * self.missed.max(1)
    }
}

/// One peer as this host sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The host's id.
    pub host: u64,
    /// Whether it counts as up now.
    pub up: bool,
    /// How long ago it last answered a heartbeat (`None`: never, since this host started).
    pub last_seen: Option<Duration>,
    /// How long its last answer took.
    pub rtt: Option<Duration>,
    /// Heartbeats missed in a row.
    pub missed: u32,
    /// Why the last missed heartbeat failed.
    pub last_error: Option<String>,
}

/// What is known of one peer.
#[derive(Default)]
struct Observed {
    last_seen: Option<Instant>,
    rtt: Option<Duration>,
    missed: u32,
    last_error: Option<String>,
}

/// Liveness of the cluster's hosts, from this host's heartbeats; cheap to clone.
#[derive(Clone)]
pub struct HostHealth {
    inner: Arc<Inner>,
}

struct Inner {
    self_id: u64,
    config: HealthConfig,
    started: Instant,
    peers: RwLock<HashMap<u64, Observed>>,
}

impl HostHealth {
    /// No observations yet, for host `self_id`.
    pub fn new(self_id: u64, config: HealthConfig) -> Self {
        HostHealth {
            inner: Arc::new(Inner {
                self_id,
                config,
                started: Instant::now(),
                peers: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> HealthConfig {
        self.inner.config
    }

    /// Every peer checked so far, by id.
    pub fn snapshot(&self) -> Vec<PeerStatus> {
        let peers = self
            .inner
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut statuses: Vec<PeerStatus> = peers
            .iter()
            .map(|(&host, observed)| self.status_of(host, observed))
            .collect();
        statuses.sort_by_key(|status| status.host);
        statuses
    }

    /// One peer's status, if it was ever checked.
    pub fn status(&self, host: u64) -> Option<PeerStatus> {
        let peers = self
            .inner
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        peers
            .get(&host)
            .map(|observed| self.status_of(host, observed))
    }

    fn status_of(&self, host: u64, observed: &Observed) -> PeerStatus {
        PeerStatus {
            host,
            up: self.up(observed.last_seen),
            last_seen: observed.last_seen.map(|at| at.elapsed()),
            rtt: observed.rtt,
            missed: observed.missed,
            last_error: observed.last_error.clone(),
        }
    }

    /// Up: answered within [`HealthConfig::down_after`]. A host never heard from counts
    /// as up for that long after this host started (its first heartbeats are on their
    /// way), then as down.
    fn up(&self, last_seen: Option<Instant>) -> bool {
        let down_after = self.inner.config.down_after();
        match last_seen {
            Some(at) => at.elapsed() <= down_after,
            None => self.inner.started.elapsed() <= down_after,
        }
    }

    fn with_peer(&self, host: u64, update: impl FnOnce(&mut Observed)) {
        let mut peers = self
            .inner
            .peers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        update(peers.entry(host).or_default());
    }

    /// `host` answered a heartbeat after `rtt`.
    pub(crate) fn record_answer(&self, host: u64, rtt: Duration) {
        self.with_peer(host, |observed| {
            if observed.missed > 0 {
                tracing::info!(host, missed = observed.missed, "host answers again");
            }
            observed.last_seen = Some(Instant::now());
            observed.rtt = Some(rtt);
            observed.missed = 0;
            observed.last_error = None;
        });
    }

    /// A heartbeat to `host` failed.
    pub(crate) fn record_miss(&self, host: u64, error: String) {
        let missed = self.inner.config.missed;
        self.with_peer(host, |observed| {
            observed.missed = observed.missed.saturating_add(1);
            if observed.missed == missed {
                tracing::warn!(host, %error, "host stopped answering heartbeats");
            }
            observed.last_error = Some(error);
        });
    }

    /// Forgets hosts no longer in the registry.
    fn retain(&self, hosts: &[u64]) {
        let mut peers = self
            .inner
            .peers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        peers.retain(|host, _| hosts.contains(host));
    }
}

impl PeerHealth for HostHealth {
    fn last_seen(&self, host: u64) -> Option<Duration> {
        if host == self.inner.self_id {
            return Some(Duration::ZERO);
        }
        let peers = self
            .inner
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        peers.get(&host)?.last_seen.map(|at| at.elapsed())
    }

    fn is_up(&self, host: u64) -> bool {
        if host == self.inner.self_id {
            return true;
        }
        let peers = self
            .inner
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.up(peers.get(&host).and_then(|observed| observed.last_seen))
    }
}

/// Sends heartbeats to every other registered host until aborted.
pub(crate) fn start_heartbeats(
    health: HostHealth,
    pool: PeerPool,
    control: Arc<ControlPlane>,
) -> JoinHandle<()> {
    let self_id = health.inner.self_id;
    let config = health.inner.config;
    let span = tracing::info_span!("heartbeats", node_id = self_id);
    tokio::spawn(
        async move {
            let mut ticks = tokio::time::interval(config.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let peers: Vec<u64> = control.read(|state| {
                    state
                        .hosts()
                        .map(|host| host.id)
                        .filter(|id| *id != self_id)
                        .collect()
                });
                health.retain(&peers);
                let beats = peers
                    .iter()
                    .map(|&peer| beat(&health, &pool, peer, config.timeout));
                futures::future::join_all(beats).await;
            }
        }
        .instrument(span),
    )
}

/// Largest heartbeat answer read.
const MAX_ANSWER: usize = 4096;

/// One heartbeat to `peer`.
async fn beat(health: &HostHealth, pool: &PeerPool, peer: u64, timeout: Duration) {
    let started = Instant::now();
    let exchange = async {
        let uri = PeerPool::uri(peer, HEALTH_PATH).map_err(|err| err.to_string())?;
        let body: PoolBody = Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut request = http::Request::new(body);
        *request.uri_mut() = uri;
        request.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_static("cloudware-cluster"),
        );
        let response = pool
            .send(request)
            .await
            .map_err(|err| crate::forward::error_chain(&err))?;
        let status = response.status();
        // Read the (small) answer so the connection goes back to the pool.
        Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|err| format!("reading the answer: {err}"))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(())) => health.record_answer(peer, started.elapsed()),
        Ok(Err(error)) => health.record_miss(peer, error),
        Err(_) => health.record_miss(peer, format!("no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_down_after_missed_intervals() {
        let config = HealthConfig {
            interval: Duration::from_millis(10),
            timeout: Duration::from_millis(5),
            missed: 3,
        };
        let health = HostHealth::new(1, config);
        assert!(health.is_up(1), "this host is always up");
        assert!(
            health.is_up(2),
            "unheard hosts are up during the grace period"
        );
        health.record_answer(2, Duration::from_millis(1));
        assert!(health.is_up(2));
        std::thread::sleep(config.down_after() + Duration::from_millis(5));
        assert!(!health.is_up(2), "silent for longer than down_after");
        assert!(!health.is_up(3), "never heard of, past the grace period");
        health.record_miss(2, "refused".into());
        let status = health.status(2).expect("observed");
        assert!(!status.up);
        assert_eq!(status.missed, 1);
        assert_eq!(status.rtt, Some(Duration::from_millis(1)));
        assert_eq!(status.last_error.as_deref(), Some("refused"));
        health.record_answer(2, Duration::from_millis(2));
        assert!(health.is_up(2));
        assert_eq!(health.snapshot().len(), 1);
        assert!(
            health
                .last_seen(2)
                .is_some_and(|ago| ago < config.down_after())
        );
    }
}
