//! `cloudware status [APP]`: live figures per app.

use super::global::ClientArgs;
use super::table::{self, Align, Table};
use super::{Ctx, parse};
use clap::Args;
use cloudware_api::wire;

/// Arguments of `cloudware status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// One app [default: every app the token may see].
    #[arg(value_name = "APP", value_parser = parse::name)]
    pub app: Option<String>,
    /// The tenant (operator tokens; others act for their own).
    #[arg(long, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// `cloudware status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    let tenant = args.tenant.as_deref();
    match &args.app {
        Some(app) => {
            let status = ctx.client.app_status(tenant, app).await?;
            ctx.print(&status, || render_status(std::slice::from_ref(&status)))
        }
        None => {
            let statuses = ctx.client.status(tenant).await?;
            ctx.print(&statuses, || render_status(&statuses))
        }
    }
}

/// The status table; figures that need traffic show `-` without any.
pub fn render_status(statuses: &[wire::AppStatus]) -> String {
    if statuses.is_empty() {
        return "no apps\n".to_owned();
    }
    let mut table = Table::new(&[
        ("APP", Align::Left),
        ("TENANT", Align::Left),
        ("VERSION", Align::Right),
        ("INSTANCES", Align::Right),
        ("BUSY", Align::Right),
        ("IDLE", Align::Right),
        ("REQ/S", Align::Right),
        ("ERRORS", Align::Right),
        ("P50", Align::Right),
        ("P99", Align::Right),
    ]);
    for s in statuses {
        let traffic = s.requests_per_second > 0.0;
        let if_traffic = |text: String| if traffic { text } else { "-".to_owned() };
        table.row(vec![
            s.app.clone(),
            s.tenant.clone(),
            s.version.map_or_else(|| "-".to_owned(), |v| v.to_string()),
            s.instances.to_string(),
            s.busy.to_string(),
            s.idle.to_string(),
            format!("{:.1}", s.requests_per_second),
            if_traffic(table::percent(s.error_rate)),
            if_traffic(table::millis(s.p50_ms)),
            if_traffic(table::millis(s.p99_ms)),
        ]);
    }
    let mut out = table.render();
    out.push_str(&render_locality(statuses));
    out
}

/// Where each app runs and which of its service calls cross hosts (nothing
/// outside a cluster).
fn render_locality(statuses: &[wire::AppStatus]) -> String {
    let mut out = String::new();
    for s in statuses
        .iter()
        .filter(|s| !s.placement.is_empty() || !s.calls.is_empty())
    {
        let hosts: Vec<String> = s
            .placement
            .iter()
            .map(|p| format!("{} ×{} ({})", p.name, p.instances, p.state))
            .collect();
        let hosts = if hosts.is_empty() {
            "no host yet".to_owned()
        } else {
            hosts.join(", ")
        };
        out.push_str(&format!("{} runs on {hosts}\n", s.app));
        for call in &s.calls {
            let locality = if call.crosses_hosts {
                "crosses hosts"
            } else {
                "same hosts"
            };
            out.push_str(&format!(
                "  calls {} on {}: {locality}\n",
                call.interface, call.app
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let busy = wire::AppStatus {
            app: "shop".into(),
            tenant: "acme".into(),
            version: Some(12),
            instances: 16,
            busy: 3,
            idle: 5,
            requests_per_second: 1234.56,
            error_rate: 0.0042,
            p50_ms: 1.234,
            p99_ms: 187.9,
            here: 0,
            placement: vec![],
            calls: vec![],
        };
        let quiet = wire::AppStatus {
            app: "blog".into(),
            tenant: "beta-corp".into(),
            version: None,
            instances: 1,
            busy: 0,
            idle: 0,
            requests_per_second: 0.0,
            error_rate: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            here: 0,
            placement: vec![],
            calls: vec![],
        };
        assert_eq!(
            render_status(&[busy, quiet]),
            "\
APP   TENANT     VERSION  INSTANCES  BUSY  IDLE   REQ/S  ERRORS    P50    P99
shop  acme            12         16     3     5  1234.6    0.4%  1.2ms  188ms
blog  beta-corp        -          1     0     0     0.0       -      -      -
"
        );
        assert_eq!(render_status(&[]), "no apps\n");
    }

    #[test]
    fn locality_lines() {
        let placed = |host: u64, name: &str, state: &str, instances: u32| wire::PlacedOn {
            host,
            name: name.into(),
            state: state.into(),
            instances,
        };
        let shop = wire::AppStatus {
            app: "shop".into(),
            tenant: "acme".into(),
            version: Some(1),
            instances: 3,
            busy: 0,
            idle: 2,
            requests_per_second: 0.0,
            error_rate: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            here: 2,
            placement: vec![placed(1, "a", "ready", 2), placed(2, "b", "down", 1)],
            calls: vec![wire::ServiceCall {
                interface: "acme:orders/api".into(),
                app: "orders".into(),
                crosses_hosts: true,
            }],
        };
        assert_eq!(
            render_locality(&[shop]),
            "shop runs on a ×2 (ready), b ×1 (down)\n  calls acme:orders/api on orders: crosses hosts\n"
        );
    }
}
