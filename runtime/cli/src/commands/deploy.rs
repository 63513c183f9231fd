//! `cloudware deploy`, `rollback`, `history` and `apps`: an app's versions.

use super::global::ClientArgs;
use super::grants::GrantArgs;
use super::parse::{self, PackageRef};
use super::table::{self, Align, Table};
use super::{Ctx, Failure, package, spinner};
use clap::Args;
use cloudware_api::wire;
use std::collections::BTreeMap;

/// Arguments of `cloudware deploy`.
#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The app (a new one is created on its first deployment).
    #[arg(value_name = "APP", value_parser = parse::name)]
    pub app: String,
    /// What to run: a `.wasm` file (pushed first) or a pushed package's
    /// `sha256:…` digest.
    #[arg(long, value_name = "FILE|DIGEST", value_parser = parse::package_ref)]
    pub package: PackageRef,
    /// Where it answers: `[HOST]/PATH-PREFIX`, e.g. `shop.example.com/`,
    /// `/api`, `*.example.com/` (repeatable; none for a service or a
    /// consumer, which does not serve HTTP).
    #[arg(long = "route", value_name = "[HOST]/PATH-PREFIX", value_parser = parse::route)]
    pub routes: Vec<String>,
    /// Instances to run at most at once [default: unchanged].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub instances: Option<u32>,
    /// Per-request deadline, e.g. `30s` or `500ms`.
    #[arg(long, value_name = "DURATION", value_parser = parse::duration_ms)]
    pub timeout: Option<u64>,
    /// Memory cap per instance, e.g. `64MiB`.
    #[arg(long, value_name = "SIZE", value_parser = parse::size_bytes)]
    pub memory: Option<u64>,
    /// Let the component call HOST over HTTP (repeatable); all else is denied.
    #[arg(long = "allow-outbound", value_name = "HOST", value_parser = parse::outbound)]
    pub allow_outbound: Vec<String>,
    /// A configuration value for the component (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse::config_pair)]
    pub config: Vec<(String, String)>,
    /// The app's tenant (operator tokens; others act for their own).
    #[arg(long, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub grants: GrantArgs,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// Arguments of `cloudware rollback`.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The app.
    #[arg(value_name = "APP", value_parser = parse::name)]
    pub app: String,
    /// The version to make current [default: the previous active one].
    #[arg(long, value_name = "VERSION")]
    pub to: Option<u32>,
    /// The app's tenant (operator tokens; others act for their own).
    #[arg(long, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// Arguments of `cloudware history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The app.
    #[arg(value_name = "APP", value_parser = parse::name)]
    pub app: String,
    /// The app's tenant (operator tokens; others act for their own).
    #[arg(long, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// Arguments of `cloudware apps`.
#[derive(Args, Debug)]
pub struct AppsArgs {
    /// Whose apps (operator tokens; others see their own) [default: all the
    /// token may see].
    #[arg(long, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// `cloudware deploy`.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let config = config_map(args.config)?;
    let capabilities = args.grants.sections()?;
    let ctx = Ctx::new(&args.global)?;
    let tenant = args.tenant.as_deref();
    let package = match args.package {
        PackageRef::Digest(digest) => digest,
        PackageRef::File(path) => package::push_file(&ctx, tenant, &path).await?.digest,
    };
    let request = wire::CreateDeployment {
        package,
        routes: args.routes,
        instances: args.instances,
        timeout_ms: args.timeout,
        memory_bytes: args.memory,
        allow_outbound: args.allow_outbound,
        config,
        capabilities,
    };
    let wait = spinner(
        ctx.show_progress(),
        format!("deploying {}: compiling and health-probing", args.app),
    );
    let result = ctx.client.deploy(tenant, &args.app, &request).await;
    wait.finish_and_clear();
    let deployment = result?;
    ensure_not_failed(&deployment)?;
    ctx.print(&deployment, || render_deployed(&deployment))
}

/// `cloudware rollback`.
pub async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    let wait = spinner(ctx.show_progress(), format!("rolling {} back", args.app));
    let request = wire::Rollback { to: args.to };
    let result = ctx
        .client
        .rollback(args.tenant.as_deref(), &args.app, &request)
        .await;
    wait.finish_and_clear();
    let deployment = result?;
    ctx.print(&deployment, || {
        format!(
            "{} version {} is current ({})\n",
            deployment.app,
            deployment.version,
            table::short_digest(&deployment.package)
        )
    })
}

/// `cloudware history`.
pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    let versions = ctx
        .client
        .history(args.tenant.as_deref(), &args.app)
        .await?;
    ctx.print(&versions, || render_history(&versions))
}

/// `cloudware apps`.
pub async fn apps(args: AppsArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    let apps = ctx.client.list_apps(args.tenant.as_deref()).await?;
    ctx.print(&apps, || render_apps(&apps))
}

/// The `--config` pairs as a map; a key given twice is a usage error.
fn config_map(pairs: Vec<(String, String)>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for (key, value) in pairs {
        if map.insert(key.clone(), value).is_some() {
            return Err(Failure::usage(format!("--config {key} is given more than once")).into());
        }
    }
    Ok(map)
}

/// A 2xx answer should never describe a failed deployment; if one does,
/// say so rather than report success.
fn ensure_not_failed(deployment: &wire::DeploymentInfo) -> anyhow::Result<()> {
    if deployment.status == "failed" {
        anyhow::bail!(
            "{} version {} failed: {}",
            deployment.app,
            deployment.version,
            deployment.reason.as_deref().unwrap_or("no reason given")
        );
    }
    Ok(())
}

fn render_deployed(deployment: &wire::DeploymentInfo) -> String {
    let outcome = if deployment.status == "superseded" {
        "was superseded by a newer version before it went live"
    } else {
        "is live"
    };
    let mut text = format!(
        "{} version {} {outcome} ({})\n",
        deployment.app,
        deployment.version,
        table::short_digest(&deployment.package)
    );
    for route in &deployment.routes {
        text.push_str(&format!("  route {route}\n"));
    }
    text
}

fn render_history(versions: &[wire::DeploymentInfo]) -> String {
    if versions.is_empty() {
        return "no versions\n".to_owned();
    }
    let with_reason = versions.iter().any(|v| v.reason.is_some());
    let mut header = vec![
        ("VERSION", Align::Right),
        ("STATUS", Align::Left),
        ("CURRENT", Align::Left),
        ("PACKAGE", Align::Left),
        ("ROUTES", Align::Left),
        ("CREATED", Align::Left),
    ];
    if with_reason {
        header.push(("REASON", Align::Left));
    }
    let mut table = Table::new(&header);
    for v in versions {
        let mut row = vec![
            v.version.to_string(),
            v.status.clone(),
            if v.current { "*" } else { "" }.to_owned(),
            table::short_digest(&v.package),
            v.routes.join(", "),
            table::time(v.created_at),
        ];
        if with_reason {
            row.push(v.reason.clone().unwrap_or_default());
        }
        table.row(row);
    }
    table.render()
}

fn render_apps(apps: &[wire::DeploymentInfo]) -> String {
    if apps.is_empty() {
        return "no apps\n".to_owned();
    }
    let mut table = Table::new(&[
        ("APP", Align::Left),
        ("TENANT", Align::Left),
        ("VERSION", Align::Right),
        ("STATUS", Align::Left),
        ("CURRENT", Align::Left),
        ("PACKAGE", Align::Left),
        ("ROUTES", Align::Left),
    ]);
    for app in apps {
        table.row(vec![
            app.app.clone(),
            app.tenant.clone(),
            app.version.to_string(),
            app.status.clone(),
            if app.current { "*" } else { "" }.to_owned(),
            table::short_digest(&app.package),
            app.routes.join(", "),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u32, status: &str, current: bool) -> wire::DeploymentInfo {
        wire::DeploymentInfo {
            app: "shop".into(),
            tenant: "acme".into(),
            version: n,
            package: format!("sha256:{}{}", n, "0".repeat(63)),
            routes: vec!["shop.example.com/".into(), "/api".into()],
            status: status.into(),
            reason: None,
            current,
            created_at: 1_750_000_000_000 + u64::from(n) * 60_000,
        }
    }

    #[test]
    fn history_table() {
        let mut failed = version(3, "failed", false);
        failed.reason = Some("health probe timed out".into());
        let versions = vec![
            version(1, "active", false),
            version(2, "active", true),
            failed,
        ];
        assert_eq!(
            render_history(&versions),
            "\
VERSION  STATUS  CURRENT  PACKAGE              ROUTES                   CREATED               REASON
      1  active           sha256:100000000000  shop.example.com/, /api  2025-06-15T15:07:40Z
      2  active  *        sha256:200000000000  shop.example.com/, /api  2025-06-15T15:08:40Z
      3  failed           sha256:300000000000  shop.example.com/, /api  2025-06-15T15:09:40Z  health probe timed out
"
        );
        // No REASON column when nothing failed.
        let text = render_history(&versions[..2]);
        assert!(text.starts_with("VERSION  STATUS  CURRENT  PACKAGE"));
        assert!(!text.contains("REASON"));
        assert_eq!(render_history(&[]), "no versions\n");
    }

    #[test]
    fn deployed_and_apps() {
        assert_eq!(
            render_deployed(&version(2, "active", true)),
            "shop version 2 is live (sha256:200000000000)\n  route shop.example.com/\n  route /api\n"
        );
        assert_eq!(
            render_apps(&[version(2, "active", true)]),
            "\
APP   TENANT  VERSION  STATUS  CURRENT  PACKAGE              ROUTES
shop  acme          2  active  *        sha256:200000000000  shop.example.com/, /api
"
        );
        let mut failed = version(4, "failed", false);
        failed.reason = Some("trap".into());
        assert_eq!(
            ensure_not_failed(&failed).unwrap_err().to_string(),
            "shop version 4 failed: trap"
        );
    }

    #[test]
    fn config_pairs_become_a_map() {
        let map = config_map(vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]).unwrap();
        assert_eq!(map.get("B").map(String::as_str), Some("x=y"));
        let err = config_map(vec![("A".into(), "1".into()), ("A".into(), "2".into())]).unwrap_err();
        assert_eq!(super::super::exit_code(&err), 2);
        assert_eq!(err.to_string(), "--config A is given more than once");
    }
}
