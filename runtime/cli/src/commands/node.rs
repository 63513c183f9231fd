//! `cloudware node list`: the cluster's hosts, their raft roles and modes.

use super::Ctx;
use super::global::ClientArgs;
use super::table::{Align, Table};
use clap::{Args, Subcommand};
use cloudware_api::wire;

/// Arguments of `cloudware node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// `cloudware node …`.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Every host: id, name, raft role, mode and addresses.
    List,
}

/// `cloudware node`.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    match args.command {
        NodeCommand::List => {
            let cluster = ctx.client.list_nodes().await?;
            ctx.print(&cluster, || render(&cluster))
        }
    }
}

fn render(cluster: &wire::ClusterInfo) -> String {
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("NAME", Align::Left),
        ("ROLE", Align::Left),
        ("MODE", Align::Left),
        ("CLUSTER", Align::Left),
        ("API", Align::Left),
        ("GATEWAY", Align::Left),
    ]);
    for host in &cluster.hosts {
        let marker = if host.id == cluster.this { " *" } else { "" };
        table.row(vec![
            host.id.to_string(),
            format!("{}{marker}", host.name),
            host.role.clone(),
            host.mode.clone(),
            host.cluster.clone(),
            host.api.clone(),
            host.gateway.clone(),
        ]);
    }
    format!(
        "{}(* = the host that answered; term {})\n",
        table.render(),
        cluster.term
    )
}
