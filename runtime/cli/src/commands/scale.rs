//! `cloudware scale APP --instances N [--min-warm M] [--spread KEY=VALUE:WEIGHT …]`.

use super::global::ClientArgs;
use super::{Ctx, parse};
use clap::Args;
use cloudware_api::wire;

/// Arguments of `cloudware scale`.
#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// The app.
    #[arg(value_name = "APP", value_parser = parse::name)]
    pub app: String,
    /// Instances to run at most at once.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub instances: u32,
    /// Instances kept ready for requests [default: 0].
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    pub min_warm: Option<u32>,
    /// Spread the instances over hosts labelled KEY=VALUE (as `cloudware up
    /// --label` set them), WEIGHT parts each: `--spread zone=east:2 --spread
    /// zone=west:1` (repeatable) [default: keep the app's rules].
    #[arg(long, value_name = "KEY=VALUE[:WEIGHT]", value_parser = parse::spread, conflicts_with = "no_spread")]
    pub spread: Vec<cloudware_state::Spread>,
    /// Drop the app's spread rules: every host alike.
    #[arg(long)]
    pub no_spread: bool,
    /// The app's tenant (operator tokens; others act for their own).
    #[arg(long, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// `cloudware scale`.
pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    let request = wire::Scale {
        instances: args.instances,
        min_warm: args.min_warm.unwrap_or(0),
        spread: match (args.no_spread, args.spread.is_empty()) {
            (true, _) => Some(Vec::new()),
            (false, true) => None,
            (false, false) => Some(args.spread),
        },
    };
    let status = ctx
        .client
        .scale(args.tenant.as_deref(), &args.app, &request)
        .await?;
    ctx.print(&status, || render_scaled(&status))
}

fn render_scaled(status: &wire::AppStatus) -> String {
    format!(
        "{} scaled to {} instances ({} busy, {} idle)\n",
        status.app, status.instances, status.busy, status.idle
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled() {
        let status = wire::AppStatus {
            app: "shop".into(),
            tenant: "acme".into(),
            version: Some(2),
            instances: 4,
            busy: 1,
            idle: 2,
            requests_per_second: 0.0,
            error_rate: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            here: 0,
            placement: vec![],
            calls: vec![],
        };
        assert_eq!(
            render_scaled(&status),
            "shop scaled to 4 instances (1 busy, 2 idle)\n"
        );
    }
}
