//! Helpers for the unit tests.

use crate::{Command, CommandError, Envelope, Outcome, Route, State};

/// A state and a source of fresh request ids.
pub(crate) struct Harness {
    pub(crate) state: State,
    next_request: u64,
}

impl Harness {
    pub(crate) fn new() -> Self {
        Harness {
            state: State::new(),
            next_request: 0,
        }
    }

    pub(crate) fn with_tenants(tenants: &[&str]) -> Self {
        let mut h = Harness::new();
        for name in tenants {
            h.ok(Command::CreateTenant {
                name: (*name).into(),
                at: 1,
            });
        }
        h
    }

    pub(crate) fn envelope(&mut self, command: Command) -> Envelope {
        self.next_request += 1;
        Envelope::new(format!("req-{}", self.next_request), command)
    }

    pub(crate) fn apply(&mut self, command: Command) -> Result<Outcome, CommandError> {
        let envelope = self.envelope(command);
        self.state.apply(&envelope)
    }

    /// Applies a command that must succeed.
    #[track_caller]
    pub(crate) fn ok(&mut self, command: Command) -> Outcome {
        let described = format!("{command:?}");
        self.apply(command)
            .unwrap_or_else(|err| panic!("{described} was rejected: {err}"))
    }

    /// Applies a command that must be rejected, checking it changed nothing.
    #[track_caller]
    pub(crate) fn rejected(&mut self, command: Command) -> CommandError {
        let before = self.state.to_snapshot();
        let described = format!("{command:?}");
        let err = match self.apply(command) {
            Ok(outcome) => panic!("{described} was accepted: {outcome:?}"),
            Err(err) => err,
        };
        assert_eq!(
            String::from_utf8(self.state.to_snapshot()).unwrap(),
            String::from_utf8(before).unwrap(),
            "a rejected command changed the state"
        );
        err
    }

    /// Creates and activates a deployment, returning its version.
    #[track_caller]
    pub(crate) fn deploy_active(&mut self, tenant: &str, app: &str, routes: &[&str]) -> u32 {
        let version = self.deploy(tenant, app, routes);
        self.ok(activate(tenant, app, version));
        version
    }

    /// Creates a pending deployment, returning its version.
    #[track_caller]
    pub(crate) fn deploy(&mut self, tenant: &str, app: &str, routes: &[&str]) -> u32 {
        match self.ok(deploy(tenant, app, routes)) {
            Outcome::DeploymentCreated { version } => version,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
}

/// A fake sha256 hex: `n` as two hex digits, repeated.
pub(crate) fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// A fake package digest.
pub(crate) fn digest(n: u8) -> String {
    format!("sha256:{}", hash(n))
}

/// The package every tenant's deployments use in tests.
pub(crate) fn package_of(tenant: &str) -> u8 {
    tenant
        .bytes()
        .fold(0u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b))
}

pub(crate) fn register(n: u8, tenant: &str) -> Command {
    Command::RegisterPackage {
        digest: digest(n),
        tenant: tenant.into(),
        size: 100,
        imports: vec!["wasi:http/outgoing-handler".into()],
        exports: vec!["wasi:http/incoming-handler".into()],
        at: 2,
    }
}

/// A route from `host/path` or `/path`, not normalized.
pub(crate) fn route(spec: &str) -> Route {
    match spec.find('/') {
        Some(0) => Route {
            host: None,
            path_prefix: spec.into(),
        },
        Some(slash) => Route {
            host: Some(spec[..slash].into()),
            path_prefix: spec[slash..].into(),
        },
        None => panic!("route {spec:?} has no path"),
    }
}

/// A deployment of the tenant's test package with the given routes.
pub(crate) fn deploy(tenant: &str, app: &str, routes: &[&str]) -> Command {
    Command::CreateDeployment {
        tenant: tenant.into(),
        app: app.into(),
        package: digest(package_of(tenant)),
        routes: routes.iter().map(|r| route(r)).collect(),
        limits: Default::default(),
        allow_outbound: vec![],
        config: Default::default(),
        capabilities: Default::default(),
        scale: None,
        by: "tok_dev".into(),
        at: 3,
    }
}

pub(crate) fn activate(tenant: &str, app: &str, version: u32) -> Command {
    Command::ActivateDeployment {
        tenant: tenant.into(),
        app: app.into(),
        version,
    }
}

pub(crate) fn fail(tenant: &str, app: &str, version: u32) -> Command {
    Command::FailDeployment {
        tenant: tenant.into(),
        app: app.into(),
        version,
        reason: "probe failed".into(),
    }
}

pub(crate) fn rollback(tenant: &str, app: &str, to: Option<u32>) -> Command {
    Command::Rollback {
        tenant: tenant.into(),
        app: app.into(),
        to,
    }
}

/// Tenants with their packages registered.
pub(crate) fn tenants(names: &[&str]) -> Harness {
    let mut h = Harness::with_tenants(names);
    for name in names {
        h.ok(register(package_of(name), name));
    }
    h
}

/// A small world: tenants `acme` and `globex`, each with a package and apps.
pub(crate) fn world() -> Harness {
    let mut h = tenants(&["acme", "globex"]);
    h.deploy_active("acme", "shop", &["shop.acme.com/", "*.acme.com/"]);
    h.deploy("acme", "shop", &["shop.acme.com/", "shop.acme.com/api"]);
    h.deploy_active("acme", "api", &["/api"]);
    h.deploy_active("globex", "site", &["globex.com/", "/"]);
    h.ok(Command::CreateToken {
        id: "tok_dev".into(),
        secret_hash: hash(1),
        role: crate::Role::Developer,
        tenant: Some("acme".into()),
        description: "dev".into(),
        at: 4,
    });
    h
}
