//! The scheduler: on the raft leader, keeps every app's placement in line
//! with its scale, its spread rules and the hosts that can take instances.
//!
//! After every applied command, and on a short tick (hosts go down without
//! a command), the leader plans each app with
//! [`cloudware_state::placement::plan`] over the hosts that are ready (not
//! draining) and up (answering heartbeats, as this host observes them), and
//! proposes [`Command::Place`] where the plan differs. Every host's
//! reconciler then runs the apps placed on it. Followers do nothing: the
//! plan is the leader's, made once and replicated.
//!
//! A host that just became leader has not yet heard every peer's
//! heartbeat; for [`SETTLE`] it counts every member as up, so a fresh
//! leader does not move instances away from hosts it has simply not heard
//! from yet.

use crate::capabilities::links_of;
use crate::control::{ControlPlane, ProposeFailure};
use crate::health::PeerHealth;
use cloudware_raft::Role;
use cloudware_state::placement::{Candidate, plan};
use cloudware_state::{App, Command, HostMode, State};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How often the leader re-plans without a new command (hosts going down).
pub const TICK: Duration = Duration::from_millis(250);
/// How long the same plan for an app is not proposed again.
const REPEAT_AFTER: Duration = Duration::from_secs(1);
/// How long a new leader counts every member as up.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Places apps on hosts while this host leads.
pub struct Scheduler {
    control: Arc<ControlPlane>,
    health: Arc<dyn PeerHealth>,
    host: u64,
}

impl Scheduler {
    /// A scheduler for host `host`, seeing its peers through `health`.
    pub fn new(control: Arc<ControlPlane>, health: Arc<dyn PeerHealth>, host: u64) -> Self {
        Scheduler {
            control,
            health,
            host,
        }
    }

    /// Runs until the control plane stops.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let span = tracing::info_span!("scheduler", host = self.host);
        tokio::spawn(self.run().instrument(span))
    }

    async fn run(self) {
        let mut applied = self.control.subscribe();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading_since: Option<Instant> = None;
        // What was proposed last per app, and when: the same plan is not
        // proposed again while the first is on its way through the log.
        let mut proposed: HashMap<(String, String), (BTreeMap<u64, u32>, Instant)> = HashMap::new();
        loop {
            tokio::select! {
                changed = applied.changed() => if changed.is_err() { break },
                _ = tick.tick() => {}
            }
            let status = self.control.raft().status();
            if status.role != Role::Leader {
                leading_since = None;
                continue;
            }
            let since = *leading_since.get_or_insert_with(Instant::now);
            let settling = since.elapsed() < SETTLE;
            let up = |id: u64| id == self.host || settling || self.health.is_up(id);
            let commands = self.control.read(|state| plan_cluster(state, &up));
            proposed.retain(|_, (_, at)| at.elapsed() < REPEAT_AFTER);
            for command in commands {
                if let Command::Place { tenant, app, hosts } = &command {
                    let key = (tenant.clone(), app.clone());
                    if proposed.get(&key).is_some_and(|(last, _)| last == hosts) {
                        continue;
                    }
                    tracing::info!(%tenant, %app, ?hosts, "placing");
                    proposed.insert(key, (hosts.clone(), Instant::now()));
                }
                match self.control.propose(command).await {
                    Ok(_) => {}
                    // The app was deleted or a host removed meanwhile: the
                    // next round plans again.
                    Err(ProposeFailure::Rejected(err)) => {
                        tracing::debug!(%err, "placement not recorded")
                    }
                    Err(err) => {
                        tracing::warn!(%err, "cannot record a placement");
                        break;
                    }
                }
            }
        }
    }
}

/// The placements to propose: one [`Command::Place`] per app whose plan
/// differs from where it runs now. Nothing on a single host (no registry).
/// `up` tells which hosts answer heartbeats.
pub fn plan_cluster(state: &State, up: &dyn Fn(u64) -> bool) -> Vec<Command> {
    let hosts: Vec<_> = state
        .hosts()
        .filter(|host| host.mode == HostMode::Ready && up(host.id))
        .collect();
    if state.hosts().next().is_none() {
        return Vec::new();
    }
    // Instances per host over every app, as planned so far, and the apps
    // this pass moves: later apps see earlier apps' moves.
    let mut load: BTreeMap<u64, u32> = BTreeMap::new();
    for app in state.apps() {
        for (host, n) in &app.placement {
            *load.entry(*host).or_default() += n;
        }
    }
    let mut moved: BTreeMap<(&str, &str), BTreeMap<u64, u32>> = BTreeMap::new();
    let mut commands = Vec::new();
    for app in state.apps() {
        if app.history.is_empty() {
            continue;
        }
        let mut imports = imported_apps(app);
        imports.sort();
        imports.dedup();
        let runs_on = |name: &str, host: u64| {
            moved
                .get(&(app.tenant.as_str(), name))
                .or_else(|| state.app(&app.tenant, name).map(|a| &a.placement))
                .is_some_and(|placement| placement.contains_key(&host))
        };
        let candidates: Vec<Candidate<'_>> = hosts
            .iter()
            .map(|host| {
                let own = app.placement.get(&host.id).copied().unwrap_or(0);
                let affinity = imports.iter().filter(|name| runs_on(name, host.id)).count();
                Candidate {
                    id: host.id,
                    labels: &host.labels,
                    load: load.get(&host.id).copied().unwrap_or(0).saturating_sub(own),
                    affinity: u32::try_from(affinity).unwrap_or(u32::MAX),
                }
            })
            .collect();
        let next = plan(
            app.scale.instances,
            &app.spread,
            &candidates,
            &app.placement,
        );
        if next != app.placement {
            for (host, n) in &app.placement {
                if let Some(total) = load.get_mut(host) {
                    *total = total.saturating_sub(*n);
                }
            }
            for (host, n) in &next {
                *load.entry(*host).or_default() += n;
            }
            commands.push(Command::Place {
                tenant: app.tenant.clone(),
                app: app.name.clone(),
                hosts: next.clone(),
            });
            moved.insert((app.tenant.as_str(), app.name.as_str()), next);
        }
    }
    commands
}

/// The apps of the same tenant whose services `app` imports (its current
/// version's links, or its newest version's while none is current).
fn imported_apps(app: &App) -> Vec<String> {
    app.current_deployment()
        .or(app.history.last())
        .map(|d| links_of(&d.capabilities).into_values().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudware_state::{Envelope, HostAddrs, Outcome, Route};

    struct World {
        state: State,
        n: u64,
    }

    impl World {
        fn apply(&mut self, command: Command) -> Outcome {
            self.n += 1;
            self.state
                .apply(&Envelope::new(format!("r{}", self.n), command))
                .expect("applies")
        }

        fn new(hosts: &[(&str, &[(&str, &str)])]) -> Self {
            let mut world = World {
                state: State::new(),
                n: 0,
            };
            for (i, (name, labels)) in hosts.iter().enumerate() {
                let port = 7000 + 10 * u16::try_from(i).expect("few");
                world.apply(Command::JoinHost {
                    id: None,
                    name: name.to_string(),
                    addrs: HostAddrs {
                        cluster: format!("127.0.0.1:{port}"),
                        api: format!("127.0.0.1:{}", port + 1),
                        gateway: format!("127.0.0.1:{}", port + 2),
                    },
                    labels: labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    at: 1,
                });
            }
            world.apply(Command::CreateTenant {
                name: "acme".into(),
                at: 1,
            });
            world.apply(Command::RegisterPackage {
                digest: format!("sha256:{}", "ab".repeat(32)),
                tenant: "acme".into(),
                size: 1,
                imports: vec![],
                exports: vec![],
                at: 1,
            });
            world
        }

        fn deploy(&mut self, app: &str, links: &[(&str, &str)]) {
            let mut capabilities = BTreeMap::new();
            if !links.is_empty() {
                let links: serde_json::Map<String, serde_json::Value> = links
                    .iter()
                    .map(|(i, a)| (i.to_string(), serde_json::Value::from(*a)))
                    .collect();
                capabilities.insert("services".into(), serde_json::json!({ "links": links }));
            }
            self.apply(Command::CreateDeployment {
                tenant: "acme".into(),
                app: app.into(),
                package: format!("sha256:{}", "ab".repeat(32)),
                routes: vec![Route::new(Some(&format!("{app}.example.com")), "/").expect("route")],
                limits: Default::default(),
                allow_outbound: vec![],
                config: Default::default(),
                capabilities,
                scale: None,
                by: "tok".into(),
                at: 1,
            });
        }

        fn scale(&mut self, app: &str, instances: u32) {
            self.apply(Command::Scale {
                tenant: "acme".into(),
                app: app.into(),
                instances,
                min_warm: 0,
                spread: None,
            });
        }

        /// Plans and applies until nothing changes; returns how many rounds.
        fn settle(&mut self, up: &dyn Fn(u64) -> bool) -> usize {
            for round in 0..5 {
                let commands = plan_cluster(&self.state, up);
                if commands.is_empty() {
                    return round;
                }
                for command in commands {
                    self.apply(command);
                }
            }
            panic!("placement does not settle");
        }

        fn placement(&self, app: &str) -> BTreeMap<u64, u32> {
            self.state.app("acme", app).expect("app").placement.clone()
        }
    }

    #[test]
    fn apps_spread_over_hosts_and_placement_is_stable() {
        let mut world = World::new(&[("a", &[]), ("b", &[]), ("c", &[])]);
        for app in ["one", "two", "three"] {
            world.deploy(app, &[]);
        }
        assert_eq!(world.settle(&|_| true), 1);
        // One instance each, on three different hosts.
        let used: std::collections::BTreeSet<u64> = ["one", "two", "three"]
            .iter()
            .flat_map(|app| world.placement(app).into_keys())
            .collect();
        assert_eq!(used.len(), 3);
        assert!(plan_cluster(&world.state, &|_| true).is_empty());
        world.scale("one", 6);
        world.settle(&|_| true);
        assert_eq!(
            world.placement("one"),
            [(1, 2), (2, 2), (3, 2)].into_iter().collect()
        );
    }

    #[test]
    fn a_down_or_draining_host_loses_its_instances() {
        let mut world = World::new(&[("a", &[]), ("b", &[]), ("c", &[])]);
        world.deploy("shop", &[]);
        world.scale("shop", 3);
        world.settle(&|_| true);
        world.settle(&|id| id != 2);
        assert_eq!(world.placement("shop").values().sum::<u32>(), 3);
        assert!(!world.placement("shop").contains_key(&2));
        // Back up: the instances spread again.
        world.settle(&|_| true);
        assert_eq!(
            world.placement("shop"),
            [(1, 1), (2, 1), (3, 1)].into_iter().collect()
        );
        world.apply(Command::SetHostMode {
            id: 3,
            mode: HostMode::Draining,
        });
        world.settle(&|_| true);
        assert!(!world.placement("shop").contains_key(&3));
        // Nothing is up but this host: everything goes there.
        world.settle(&|id| id == 1);
        assert_eq!(world.placement("shop"), [(1, 3)].into_iter().collect());
    }

    #[test]
    fn callers_are_placed_next_to_their_services() {
        let mut world = World::new(&[("a", &[]), ("b", &[]), ("c", &[])]);
        world.deploy("filler", &[]);
        world.deploy("orders", &[]);
        world.settle(&|_| true);
        let orders_host = *world.placement("orders").keys().next().expect("placed");
        world.deploy("shop", &[("acme:orders/api", "orders")]);
        world.settle(&|_| true);
        assert_eq!(
            world.placement("shop"),
            [(orders_host, 1)].into_iter().collect()
        );
    }

    #[test]
    fn spread_rules_pick_labelled_hosts() {
        let mut world = World::new(&[
            ("a", &[("zone", "east")]),
            ("b", &[("zone", "west")]),
            ("c", &[("zone", "west")]),
        ]);
        world.deploy("shop", &[]);
        world.apply(Command::Scale {
            tenant: "acme".into(),
            app: "shop".into(),
            instances: 4,
            min_warm: 0,
            spread: Some(vec![cloudware_state::Spread {
                requirements: [("zone".to_string(), "west".to_string())].into(),
                weight: 1,
            }]),
        });
        world.settle(&|_| true);
        assert_eq!(
            world.placement("shop"),
            [(2, 2), (3, 2)].into_iter().collect()
        );
    }

    #[test]
    fn a_single_host_places_nothing() {
        let mut state = State::new();
        state
            .apply(&Envelope::new(
                "r",
                Command::CreateTenant {
                    name: "acme".into(),
                    at: 1,
                },
            ))
            .expect("applies");
        assert!(plan_cluster(&state, &|_| true).is_empty());
    }
}
