use super::*;
use crate::testing::{Harness, activate, deploy, digest, fail, package_of, rollback, tenants};
use crate::{Command, CommandError, Outcome};

fn scale(tenant: &str, app: &str, instances: u32, min_warm: u32) -> Command {
    Command::Scale {
        tenant: tenant.into(),
        app: app.into(),
        instances,
        min_warm,
        spread: None,
    }
}

fn status(h: &Harness, app: &str, version: u32) -> StatusKind {
    h.state
        .app("acme", app)
        .unwrap()
        .deployment(version)
        .unwrap()
        .status
        .kind()
}

#[test]
fn first_deployment_creates_a_pending_app() {
    let mut h = tenants(&["acme"]);
    let mut command = deploy("acme", "shop", &["Shop.Example.com/api/"]);
    if let Command::CreateDeployment {
        limits,
        allow_outbound,
        config,
        ..
    } = &mut command
    {
        limits.timeout_ms = Some(500);
        allow_outbound.push("api.stripe.com".into());
        config.insert("GREETING".into(), "hi".into());
    }
    assert_eq!(h.ok(command), Outcome::DeploymentCreated { version: 1 });

    let app = h.state.app("acme", "shop").unwrap();
    assert_eq!(app.current, None);
    assert_eq!(app.scale, Scale::default());
    let v1 = app.deployment(1).unwrap();
    assert_eq!(v1.status, DeploymentStatus::Pending);
    assert_eq!(v1.package, digest(package_of("acme")));
    assert_eq!(
        v1.routes,
        [Route::new(Some("shop.example.com"), "/api").unwrap()]
    );
    assert_eq!(v1.limits.timeout_ms, Some(500));
    assert_eq!(v1.allow_outbound, ["api.stripe.com"]);
    assert_eq!(v1.config["GREETING"], "hi");
    assert_eq!((v1.created_at, v1.created_by.as_str()), (3, "tok_dev"));
    assert!(h.state.current_deployment("acme", "shop").is_none());
    assert!(h.state.routing_table().is_empty());
    let pending: Vec<_> = h
        .state
        .pending_deployments()
        .map(|(app, d)| (app.name.as_str(), d.version))
        .collect();
    assert_eq!(pending, [("shop", 1)]);
    assert_eq!(h.state.apps_of("acme").count(), 1);
    assert_eq!(h.state.apps_of("globex").count(), 0);
}

#[test]
fn activation_moves_traffic() {
    let mut h = tenants(&["acme"]);
    h.deploy("acme", "shop", &["/"]);
    assert_eq!(
        h.ok(activate("acme", "shop", 1)),
        Outcome::DeploymentActivated {
            version: 1,
            previous: None
        }
    );
    h.deploy("acme", "shop", &["/"]);
    assert_eq!(
        h.state.current_deployment("acme", "shop").unwrap().version,
        1
    );
    assert_eq!(
        h.ok(activate("acme", "shop", 2)),
        Outcome::DeploymentActivated {
            version: 2,
            previous: Some(1)
        }
    );
    assert_eq!(status(&h, "shop", 1), StatusKind::Active);
    assert_eq!(status(&h, "shop", 2), StatusKind::Active);
    assert_eq!(h.state.routing_table().route("x", "/").unwrap().version, 2);
    assert_eq!(h.state.pending_deployments().count(), 0);
}

#[test]
fn concurrent_deploys_get_consecutive_versions_and_the_later_wins() {
    // Two deploys proposed from the same observed state both land.
    for later_activated_first in [false, true] {
        let mut h = tenants(&["acme"]);
        h.deploy_active("acme", "shop", &["/"]);
        assert_eq!(h.deploy("acme", "shop", &["/"]), 2);
        assert_eq!(h.deploy("acme", "shop", &["/", "/v3"]), 3);
        assert_eq!(h.state.pending_deployments().count(), 2);
        if later_activated_first {
            h.ok(activate("acme", "shop", 3));
            let err = h.rejected(activate("acme", "shop", 2));
            assert_eq!(
                err.to_string(),
                "version 2 of app `shop` is stale: the newer version 3 has already been activated"
            );
            // The stale version is no longer offered to the reconciler, but
            // may still be marked failed.
            assert_eq!(h.state.pending_deployments().count(), 0);
            h.ok(fail("acme", "shop", 2));
        } else {
            h.ok(activate("acme", "shop", 2));
            h.ok(activate("acme", "shop", 3));
        }
        assert_eq!(h.state.app("acme", "shop").unwrap().current, Some(3));
    }
}

#[test]
fn only_pending_versions_can_be_activated_or_failed() {
    let mut h = tenants(&["acme"]);
    h.deploy_active("acme", "shop", &["/"]);
    h.deploy("acme", "shop", &["/"]);
    h.ok(fail("acme", "shop", 2));
    assert_eq!(status(&h, "shop", 2), StatusKind::Failed);
    assert_eq!(
        h.state
            .app("acme", "shop")
            .unwrap()
            .deployment(2)
            .unwrap()
            .status,
        DeploymentStatus::Failed {
            reason: "probe failed".into()
        }
    );
    assert_eq!(h.state.app("acme", "shop").unwrap().current, Some(1));
    let cases = [
        (
            activate("acme", "shop", 1),
            "version 1 of app `shop` is active, not pending",
        ),
        (
            activate("acme", "shop", 2),
            "version 2 of app `shop` is failed, not pending",
        ),
        (
            fail("acme", "shop", 1),
            "version 1 of app `shop` is active, not pending",
        ),
        (
            fail("acme", "shop", 2),
            "version 2 of app `shop` is failed, not pending",
        ),
        (activate("acme", "shop", 3), "app `shop` has no version 3"),
        (activate("acme", "shop", 0), "app `shop` has no version 0"),
        (fail("acme", "shop", 9), "app `shop` has no version 9"),
        (
            activate("acme", "cart", 1),
            "app `cart` of tenant `acme` does not exist",
        ),
        (
            fail("globex", "shop", 1),
            "app `shop` of tenant `globex` does not exist",
        ),
    ];
    for (command, message) in cases {
        assert_eq!(h.rejected(command).to_string(), message);
    }
}

#[test]
fn rollback_defaults_to_the_newest_earlier_active_version() {
    let mut h = tenants(&["acme"]);
    h.deploy_active("acme", "shop", &["/"]);
    h.deploy_active("acme", "shop", &["/"]);
    h.deploy("acme", "shop", &["/"]);
    h.ok(fail("acme", "shop", 3));
    h.deploy_active("acme", "shop", &["/"]);
    assert_eq!(
        h.ok(rollback("acme", "shop", None)),
        Outcome::RolledBack {
            version: 2,
            from: 4
        }
    );
    assert_eq!(
        h.ok(rollback("acme", "shop", None)),
        Outcome::RolledBack {
            version: 1,
            from: 2
        }
    );
    assert_eq!(
        h.rejected(rollback("acme", "shop", None)).to_string(),
        "app `shop` has no earlier active version to roll back to"
    );
    // Rolling forward to a version that was active is allowed.
    assert_eq!(
        h.ok(rollback("acme", "shop", Some(4))),
        Outcome::RolledBack {
            version: 4,
            from: 1
        }
    );
    assert_eq!(h.state.routing_table().route("h", "/").unwrap().version, 4);
}

#[test]
fn rollback_targets_must_have_been_active() {
    let mut h = tenants(&["acme"]);
    h.deploy("acme", "shop", &["/"]);
    assert_eq!(
        h.rejected(rollback("acme", "shop", None)).to_string(),
        "app `shop` has no current version to roll back from"
    );
    h.ok(fail("acme", "shop", 1));
    h.deploy_active("acme", "shop", &["/"]);
    h.deploy("acme", "shop", &["/"]);
    let cases = [
        (
            rollback("acme", "shop", Some(1)),
            "cannot roll app `shop` back to version 1: it is failed and was never active",
        ),
        (
            rollback("acme", "shop", Some(3)),
            "cannot roll app `shop` back to version 3: it is pending and was never active",
        ),
        (
            rollback("acme", "shop", Some(2)),
            "version 2 of app `shop` is already current",
        ),
        (
            rollback("acme", "shop", Some(7)),
            "app `shop` has no version 7",
        ),
        (
            rollback("acme", "shop", None),
            "app `shop` has no earlier active version to roll back to",
        ),
        (
            rollback("acme", "nope", None),
            "app `nope` of tenant `acme` does not exist",
        ),
    ];
    for (command, message) in cases {
        assert_eq!(h.rejected(command).to_string(), message);
    }
}

#[test]
fn stale_versions_stay_stale_after_a_rollback() {
    let mut h = tenants(&["acme"]);
    h.deploy_active("acme", "shop", &["/"]);
    h.deploy("acme", "shop", &["/"]);
    h.deploy_active("acme", "shop", &["/"]);
    h.ok(rollback("acme", "shop", Some(1)));
    assert!(matches!(
        h.rejected(activate("acme", "shop", 2)),
        CommandError::StaleActivation {
            version: 2,
            newer: 3,
            ..
        }
    ));
}

#[test]
fn scale_is_validated_and_app_level() {
    let mut h = tenants(&["acme"]);
    h.deploy_active("acme", "shop", &["/"]);
    assert_eq!(
        h.ok(scale("acme", "shop", 3, 1)),
        Outcome::Scaled {
            scale: Scale {
                instances: 3,
                min_warm: 1
            }
        }
    );
    h.ok(scale("acme", "shop", MAX_INSTANCES, MAX_INSTANCES));
    h.ok(scale("acme", "shop", 0, 0));
    assert_eq!(
        h.rejected(scale("acme", "shop", 5000, 0)).to_string(),
        "scale of 5000 instances exceeds the limit of 1000"
    );
    assert_eq!(
        h.rejected(scale("acme", "shop", 3, 4)).to_string(),
        "min_warm of 4 exceeds the 3 instances of the scale"
    );
    assert!(matches!(
        h.rejected(scale("acme", "cart", 1, 0)),
        CommandError::UnknownApp { .. }
    ));

    // A deployment may carry a new scale; it applies to the app at once.
    let mut command = deploy("acme", "shop", &["/"]);
    if let Command::CreateDeployment { scale, .. } = &mut command {
        *scale = Some(Scale {
            instances: 7,
            min_warm: 2,
        });
    }
    h.ok(command);
    let app = h.state.app("acme", "shop").unwrap();
    assert_eq!(app.scale.instances, 7);
    assert_eq!(h.state.routing_table().targets()[0].scale.min_warm, 2);
}

#[test]
fn create_deployment_rejects_bad_input() {
    let mut h = tenants(&["acme", "globex"]);
    fn set(edit: fn(&mut Command)) -> Command {
        let mut command = deploy("acme", "shop", &["/"]);
        edit(&mut command);
        command
    }
    let cases: Vec<(Command, &str)> = vec![
        (
            deploy("nope", "shop", &["/"]),
            "tenant `nope` does not exist",
        ),
        (
            deploy("acme", "Shop", &["/"]),
            "`Shop` is not a valid app name: use 1–63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ),
        (
            deploy("acme", "shop", &["/api", "/api/"]),
            "route /api appears more than once in the deployment",
        ),
        (
            deploy("acme", "shop", &["shop.acme.com:80/"]),
            "`shop.acme.com:80` is not a valid route host: it must not include a port",
        ),
        (
            deploy("acme", "shop", &["/a//b"]),
            "`/a//b` is not a valid path prefix: it must not contain empty, '.' or '..' segments",
        ),
        (
            set(|c| {
                if let Command::CreateDeployment { package, .. } = c {
                    *package = digest(package_of("globex"))
                }
            }),
            "has not been uploaded by tenant `acme`",
        ),
        (
            set(|c| {
                if let Command::CreateDeployment { package, .. } = c {
                    *package = "sha256:12".into()
                }
            }),
            "`sha256:12` is not a package digest",
        ),
        (
            set(|c| {
                if let Command::CreateDeployment { limits, .. } = c {
                    limits.memory_bytes = Some(0)
                }
            }),
            "the memory_bytes limit must be greater than 0",
        ),
        (
            set(|c| {
                if let Command::CreateDeployment { allow_outbound, .. } = c {
                    allow_outbound.push("a b".into())
                }
            }),
            "`a b` is not a valid outbound entry",
        ),
        (
            set(|c| {
                if let Command::CreateDeployment { config, .. } = c {
                    config.insert(String::new(), "x".into());
                }
            }),
            "`` is not a valid config key",
        ),
        (
            set(|c| {
                if let Command::CreateDeployment { scale, .. } = c {
                    *scale = Some(Scale {
                        instances: 1001,
                        min_warm: 0,
                    })
                }
            }),
            "scale of 1001 instances exceeds the limit of 1000",
        ),
    ];
    for (command, message) in cases {
        let err = h.rejected(command).to_string();
        assert!(
            err.contains(message),
            "{err:?} does not contain {message:?}"
        );
    }
    assert_eq!(h.state.apps().count(), 0);
}

#[test]
fn routes_are_stored_normalized() {
    let mut h = tenants(&["acme"]);
    h.deploy("acme", "shop", &["*.ACME.com/static/", "/"]);
    let routes = &h
        .state
        .app("acme", "shop")
        .unwrap()
        .deployment(1)
        .unwrap()
        .routes;
    assert_eq!(routes[0].to_string(), "*.acme.com/static");
    assert_eq!(routes[1].to_string(), "/");
}

#[test]
fn delete_app_releases_everything() {
    let mut h = tenants(&["acme", "globex"]);
    h.deploy_active("acme", "shop", &["shop.com/"]);
    assert!(matches!(
        h.rejected(deploy("globex", "site", &["shop.com/"])),
        CommandError::HostOfAnotherTenant { .. }
    ));
    let delete = |tenant: &str, app: &str| Command::DeleteApp {
        tenant: tenant.into(),
        app: app.into(),
    };
    assert_eq!(h.ok(delete("acme", "shop")), Outcome::AppDeleted);
    assert!(h.state.app("acme", "shop").is_none());
    assert!(h.state.routing_table().is_empty());
    assert!(matches!(
        h.rejected(delete("acme", "shop")),
        CommandError::UnknownApp { .. }
    ));
    h.deploy_active("globex", "site", &["shop.com/"]);
    // A new app of the old name starts its versions again.
    assert_eq!(h.deploy("acme", "shop", &["/"]), 1);
}

#[test]
fn deployment_lookup_by_version() {
    let mut h = tenants(&["acme"]);
    h.deploy("acme", "shop", &["/"]);
    h.deploy("acme", "shop", &["/"]);
    let app = h.state.app("acme", "shop").unwrap();
    assert_eq!(app.deployment(2).unwrap().version, 2);
    assert!(app.deployment(0).is_none());
    assert!(app.deployment(3).is_none());
    assert!(app.deployment(u32::MAX).is_none());
    assert_eq!(app.newest_activated(), None);
    assert_eq!(app.pending().count(), 2);
}

fn join(h: &mut Harness, name: &str, port: u16) -> u64 {
    let addrs = crate::HostAddrs {
        cluster: format!("127.0.0.1:{port}"),
        api: format!("127.0.0.1:{}", port + 1),
        gateway: format!("127.0.0.1:{}", port + 2),
    };
    match h.ok(Command::JoinHost {
        id: None,
        name: name.into(),
        addrs,
        labels: Default::default(),
        at: 1,
    }) {
        Outcome::HostJoined { id } => id,
        other => panic!("unexpected {other:?}"),
    }
}

fn place(app: &str, hosts: &[(u64, u32)]) -> Command {
    Command::Place {
        tenant: "acme".into(),
        app: app.into(),
        hosts: hosts.iter().copied().collect(),
    }
}

#[test]
fn placements_name_members_and_forget_removed_hosts() {
    let mut h = tenants(&["acme"]);
    h.deploy_active("acme", "shop", &["shop.example.com/"]);
    let (a, b) = (join(&mut h, "a", 7000), join(&mut h, "b", 7010));
    assert_eq!(h.ok(place("shop", &[(a, 2), (b, 1)])), Outcome::Placed);
    assert!(matches!(
        h.rejected(place("shop", &[(a, 1), (99, 1)])),
        CommandError::InvalidPlacement { .. }
    ));
    assert!(matches!(
        h.rejected(place("shop", &[(a, 0)])),
        CommandError::InvalidPlacement { .. }
    ));
    assert!(matches!(
        h.rejected(place("nope", &[(a, 1)])),
        CommandError::UnknownApp { .. }
    ));
    let placement = |h: &Harness| h.state.app("acme", "shop").unwrap().placement.clone();
    assert_eq!(placement(&h), [(a, 2), (b, 1)].into_iter().collect());
    // Placements survive the log's encoding and snapshots.
    let envelope = crate::Envelope::new("r", place("shop", &[(a, 2)]));
    let decoded: crate::Envelope =
        serde_json::from_slice(&serde_json::to_vec(&envelope).unwrap()).unwrap();
    assert_eq!(decoded, envelope);
    let restored = crate::State::from_snapshot(&h.state.to_snapshot()).unwrap();
    assert_eq!(restored, h.state);
    assert_eq!(restored.routing_table(), h.state.routing_table());
    h.ok(Command::RemoveHost { id: b });
    assert_eq!(placement(&h), [(a, 2)].into_iter().collect());
}

#[test]
fn scale_sets_spread_rules_or_keeps_them() {
    let mut h = tenants(&["acme"]);
    h.deploy_active("acme", "shop", &["shop.example.com/"]);
    let rules = vec![crate::Spread {
        requirements: [("zone".to_string(), "a".to_string())].into(),
        weight: 3,
    }];
    let mut command = scale("acme", "shop", 6, 0);
    if let Command::Scale { spread, .. } = &mut command {
        *spread = Some(rules.clone());
    }
    h.ok(command);
    h.ok(scale("acme", "shop", 9, 0));
    let app = h.state.app("acme", "shop").unwrap();
    assert_eq!((app.scale.instances, &app.spread), (9, &rules));
    let mut bad = scale("acme", "shop", 1, 0);
    if let Command::Scale { spread, .. } = &mut bad {
        *spread = Some(vec![crate::Spread::default()]);
    }
    assert!(matches!(
        h.rejected(bad),
        CommandError::InvalidSpread { .. }
    ));
    assert_eq!(h.state.app("acme", "shop").unwrap().scale.instances, 9);
}
