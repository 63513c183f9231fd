//! Tests of the state machine as a whole: idempotent re-apply, rejection
//! leaving no trace, and a property-style run of pseudo-random commands.

use crate::routes::HostPattern;
use crate::testing::{Harness, activate, deploy, world};
use crate::{Command, CommandError, Envelope, Outcome, Role, Route, Scale, State};

#[test]
fn reapplying_a_request_id_returns_the_stored_outcome() {
    let mut h = world();
    let envelope = h.envelope(deploy("acme", "api", &["/api"]));
    let first = h.state.apply(&envelope).unwrap();
    assert_eq!(first, Outcome::DeploymentCreated { version: 2 });
    let snapshot = h.state.to_snapshot();
    assert_eq!(h.state.apply(&envelope).unwrap(), first);
    assert_eq!(h.state.to_snapshot(), snapshot, "applied twice");
    assert_eq!(h.state.app("acme", "api").unwrap().history.len(), 2);
    assert_eq!(
        h.state.remembered_outcome(&envelope.request_id),
        Some(&first)
    );

    // The memory survives a snapshot.
    let mut restored = State::from_snapshot(&snapshot).unwrap();
    assert_eq!(restored.apply(&envelope).unwrap(), first);
    assert_eq!(restored.to_snapshot(), snapshot);
}

#[test]
fn rejected_requests_are_not_remembered() {
    let mut h = Harness::new();
    let envelope = Envelope::new(
        "req-x",
        Command::CreateToken {
            id: "tok_1".into(),
            secret_hash: crate::testing::hash(1),
            role: Role::Developer,
            tenant: Some("acme".into()),
            description: String::new(),
            at: 0,
        },
    );
    assert!(matches!(
        h.state.apply(&envelope),
        Err(CommandError::UnknownTenant { .. })
    ));
    assert!(h.state.remembered_outcome("req-x").is_none());
    h.ok(Command::CreateTenant {
        name: "acme".into(),
        at: 0,
    });
    // A retry after the cause was fixed applies (once).
    assert_eq!(h.state.apply(&envelope), Ok(Outcome::TokenCreated));
    assert_eq!(h.state.apply(&envelope), Ok(Outcome::TokenCreated));
    assert_eq!(h.state.tokens().count(), 1);
}

#[test]
fn empty_request_ids_are_refused() {
    let mut state = State::new();
    let envelope = Envelope::new(
        "",
        Command::CreateTenant {
            name: "acme".into(),
            at: 0,
        },
    );
    assert_eq!(state.apply(&envelope), Err(CommandError::MissingRequestId));
    assert_eq!(state, State::new());
}

#[test]
fn queries_see_the_world() {
    let h = world();
    let s = &h.state;
    assert_eq!(
        s.tenants().map(|t| &t.name[..]).collect::<Vec<_>>(),
        ["acme", "globex"]
    );
    assert_eq!(
        s.apps()
            .map(|a| (&a.tenant[..], &a.name[..]))
            .collect::<Vec<_>>(),
        [("acme", "api"), ("acme", "shop"), ("globex", "site")]
    );
    assert_eq!(s.current_deployment("acme", "shop").unwrap().version, 1);
    let pending: Vec<_> = s
        .pending_deployments()
        .map(|(a, d)| (&a.name[..], d.version))
        .collect();
    assert_eq!(pending, [("shop", 2)]);
    assert_eq!(
        s.authenticate(&crate::testing::hash(1)).unwrap().id,
        "tok_dev"
    );
    let table = s.routing_table();
    assert_eq!(table.route("x.acme.com", "/").unwrap().app, "shop");
    assert_eq!(table.route("unknown.org", "/api/x").unwrap().app, "api");
    assert_eq!(table.route("unknown.org", "/").unwrap().app, "site");
    assert!(table.route("globex.com", "/api").unwrap().app == "site");
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TENANTS: [&str; 3] = ["t1", "t2", "t3"];
const APPS: [&str; 3] = ["a", "b", "c"];
const HOSTS: [&str; 7] = [
    "",
    "x.com",
    "*.x.com",
    "a.x.com",
    "*.a.x.com",
    "y.com",
    "*.y.com",
];
const PATHS: [&str; 4] = ["/", "/api", "/api/v1", "/z"];

fn random_command(rng: &mut Rng, step: u64) -> Command {
    let tenant = rng.pick(&TENANTS).to_owned();
    let app = rng.pick(&APPS).to_owned();
    let version = rng.below(5) as u32;
    match rng.below(12) {
        0 => Command::CreateTenant {
            name: tenant,
            at: step,
        },
        1 => Command::RegisterPackage {
            digest: crate::testing::digest(rng.below(3) as u8),
            tenant,
            size: 10,
            imports: vec![],
            exports: vec![],
            at: step,
        },
        2 => Command::CreateToken {
            id: format!("tok_{}", rng.below(6)),
            secret_hash: crate::testing::hash(rng.below(6) as u8),
            role: Role::ALL[rng.below(4)],
            tenant: (rng.below(4) != 0).then_some(tenant),
            description: String::new(),
            at: step,
        },
        3 => Command::RevokeToken {
            id: format!("tok_{}", rng.below(6)),
        },
        4..=6 => {
            let routes = (0..rng.below(3))
                .map(|_| {
                    let host = rng.pick(&HOSTS);
                    Route {
                        host: (!host.is_empty()).then(|| host.to_owned()),
                        path_prefix: rng.pick(&PATHS).to_owned(),
                    }
                })
                .collect();
            Command::CreateDeployment {
                tenant,
                app,
                package: crate::testing::digest(rng.below(3) as u8),
                routes,
                limits: Default::default(),
                allow_outbound: vec![],
                config: Default::default(),
                capabilities: Default::default(),
                scale: (rng.below(4) == 0).then_some(Scale {
                    instances: rng.below(3) as u32,
                    min_warm: rng.below(2) as u32,
                }),
                by: "tok_0".into(),
                at: step,
            }
        }
        7 | 8 => activate(&tenant, &app, version),
        9 => Command::FailDeployment {
            tenant,
            app,
            version,
            reason: "crashed".into(),
        },
        10 => Command::Rollback {
            tenant,
            app,
            to: (rng.below(2) == 0).then_some(version),
        },
        _ => match rng.below(3) {
            0 => Command::DeleteApp { tenant, app },
            _ => Command::Scale {
                tenant,
                app,
                instances: rng.below(1500) as u32,
                min_warm: rng.below(3) as u32,
                spread: None,
            },
        },
    }
}

/// Invariants that must hold after every command.
fn check_invariants(state: &State) {
    for app in state.apps() {
        if let Some(current) = app.current_deployment() {
            assert_eq!(current.status, crate::DeploymentStatus::Active);
        }
        assert!(app.scale.min_warm <= app.scale.instances);
    }
    // No host pattern of one tenant overlaps another tenant's, and no two
    // apps claim the same route.
    let claims: Vec<(&str, &str, &Route)> = state
        .apps()
        .flat_map(|app| {
            app.claimed_routes()
                .map(move |route| (&app.tenant[..], &app.name[..], route))
        })
        .collect();
    for (i, (tenant_a, app_a, route_a)) in claims.iter().enumerate() {
        for (tenant_b, app_b, route_b) in &claims[i + 1..] {
            if (tenant_a, app_a) == (tenant_b, app_b) {
                continue;
            }
            assert_ne!(
                route_a, route_b,
                "{tenant_a}/{app_a} and {tenant_b}/{app_b}"
            );
            if tenant_a != tenant_b
                && let (Some(a), Some(b)) = (&route_a.host, &route_b.host)
            {
                assert!(!HostPattern::parse(a).overlaps(HostPattern::parse(b)));
            }
        }
    }
    // Every routed exact host reaches its own tenant.
    let table = state.routing_table();
    for target in table.targets() {
        for route in &target.routes {
            if let Some(HostPattern::Exact(host)) = route.host_pattern() {
                let found = table.route(host, &route.path_prefix).unwrap();
                assert_eq!(found.tenant, target.tenant);
            }
        }
    }
}

#[test]
fn random_commands_are_deterministic_across_snapshots() {
    const STEPS: u64 = 2_000;
    let mut rng = Rng(0x5EED);
    let mut envelopes = Vec::new();
    for step in 0..STEPS {
        // Now and then a proposal is retried with an earlier request id.
        let request_id = if step > 0 && rng.below(10) == 0 {
            format!("req-{}", rng.below(step as usize))
        } else {
            format!("req-{step}")
        };
        envelopes.push(Envelope::new(request_id, random_command(&mut rng, step)));
    }

    let mut straight = State::new();
    let mut restored = State::new();
    let (mut accepted, mut rejected) = (0, 0);
    for (step, envelope) in envelopes.iter().enumerate() {
        if step == envelopes.len() / 2 {
            restored = State::from_snapshot(&restored.to_snapshot()).unwrap();
        }
        let before = straight.to_snapshot();
        let result = straight.apply(envelope);
        match &result {
            Ok(_) => accepted += 1,
            Err(_) => {
                rejected += 1;
                assert_eq!(straight.to_snapshot(), before, "rejection changed state");
            }
        }
        assert_eq!(restored.apply(envelope), result, "step {step}");
        check_invariants(&straight);
    }
    assert_eq!(straight.to_snapshot(), restored.to_snapshot());
    assert_eq!(straight, restored);
    assert!(
        accepted > 200 && rejected > 200,
        "{accepted} accepted, {rejected} rejected"
    );
    assert!(straight.apps().any(|app| app.current.is_some()));
}

mod partners {
    use crate::testing::world;
    use crate::{Command, Envelope, ErrorKind, Outcome, Partner, State};

    fn partner(app_id: &str, tenant: &str) -> Partner {
        Partner {
            app_id: app_id.into(),
            tenant: tenant.into(),
            name: "Acme Pay".into(),
            public_key: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
            methods: vec!["orders.create-order".into()],
            created_at: 1,
        }
    }

    #[test]
    fn partners_register_once_survive_snapshots_and_are_removed_by_their_tenant_only() {
        let mut h = world();
        let register = |p: Partner| Command::RegisterPartner { partner: p };
        let outcome = h
            .state
            .apply(&Envelope::new(
                "p1",
                register(partner("2026000001", "acme")),
            ))
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::PartnerRegistered {
                app_id: "2026000001".into()
            }
        );
        let again = h
            .state
            .apply(&Envelope::new(
                "p2",
                register(partner("2026000001", "acme")),
            ))
            .unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Conflict);
        let mut bad = partner("2026000002", "acme");
        bad.methods = vec!["no-dot".into()];
        let err = h
            .state
            .apply(&Envelope::new("p3", register(bad)))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        let unknown = h
            .state
            .apply(&Envelope::new(
                "p4",
                register(partner("2026000003", "nobody")),
            ))
            .unwrap_err();
        assert_eq!(unknown.kind(), ErrorKind::NotFound);

        let restored = State::from_snapshot(&h.state.to_snapshot()).unwrap();
        assert_eq!(
            restored.partner("2026000001"),
            h.state.partner("2026000001")
        );

        let other = Command::RemovePartner {
            tenant: "globex".into(),
            app_id: "2026000001".into(),
        };
        assert!(h.state.apply(&Envelope::new("p5", other)).is_err());
        let own = Command::RemovePartner {
            tenant: "acme".into(),
            app_id: "2026000001".into(),
        };
        h.state.apply(&Envelope::new("p6", own)).unwrap();
        assert!(h.state.partner("2026000001").is_none());
    }
}
