//! `cloudware node list|drain|ready|remove`: the cluster's hosts, their raft
//! roles, states and instances; taking a host out of service and back, and
//! out of the cluster.

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
    /// Every host: id, name, raft role, state, instances and addresses.
    List,
    /// Stop placing instances on a host and move its instances elsewhere.
    Drain {
        /// The host's name or id.
        #[arg(value_name = "HOST")]
        host: String,
    },
    /// Let a drained host take instances again.
    Ready {
        /// The host's name or id.
        #[arg(value_name = "HOST")]
        host: String,
    },
    /// Remove a drained or down host from the cluster (it leaves the raft
    /// group; its instances are placed elsewhere).
    Remove {
        /// The host's name or id.
        #[arg(value_name = "HOST")]
        host: String,
        /// Remove it even while it is up and ready.
        #[arg(long)]
        force: bool,
    },
}

/// `cloudware node`.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    match args.command {
        NodeCommand::List => {
            let cluster = ctx.client.list_nodes().await?;
            ctx.print(&cluster, || render(&cluster))
        }
        NodeCommand::Drain { host } => {
            let cluster = ctx.client.set_node_mode(&host, true).await?;
            ctx.print(&cluster, || {
                format!(
                    "{host} is draining: its instances move to other hosts.\n{}",
                    render(&cluster)
                )
            })
        }
        NodeCommand::Ready { host } => {
            let cluster = ctx.client.set_node_mode(&host, false).await?;
            ctx.print(&cluster, || {
                format!("{host} takes instances again.\n{}", render(&cluster))
            })
        }
        NodeCommand::Remove { host, force } => {
            let cluster = ctx.client.remove_node(&host, force).await?;
            ctx.print(&cluster, || {
                format!("{host} was removed from the cluster.\n{}", render(&cluster))
            })
        }
    }
}

fn render(cluster: &wire::ClusterInfo) -> String {
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("NAME", Align::Left),
        ("ROLE", Align::Left),
        ("STATE", Align::Left),
        ("INSTANCES", Align::Right),
        ("SEEN", Align::Right),
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
            host.state.clone(),
            host.instances.to_string(),
            host.last_seen_ms.map_or_else(
                || "never".to_string(),
                |ms| format!("{:.1}s", ms as f64 / 1000.0),
            ),
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
