//! `cloudware queue list|dlq|replay`: durable queues and their dead
//! letters. A topic subscription's backlog is the queue `TOPIC@SUBSCRIBER`.

use super::global::ClientArgs;
use super::table::{self, Align, Table};
use super::{Ctx, parse};
use clap::{Args, Subcommand};
use cloudware_api::wire;

/// Arguments of `cloudware queue`.
#[derive(Args, Debug)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: QueueCommand,
    /// The queues' tenant (operator tokens; others act for their own).
    #[arg(long, global = true, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// `cloudware queue …`.
#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// Every queue with its depth, in-flight and dead-letter counts.
    List,
    /// The dead letters of a queue.
    Dlq {
        /// The queue (or `TOPIC@SUBSCRIBER`).
        #[arg(value_name = "QUEUE")]
        queue: String,
    },
    /// Move dead letters back into their queue to be delivered again.
    Replay {
        /// The queue (or `TOPIC@SUBSCRIBER`).
        #[arg(value_name = "QUEUE")]
        queue: String,
        /// Only this dead letter (repeatable) [default: all].
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<u64>,
    },
}

/// `cloudware queue`.
pub async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    let tenant = args.tenant.as_deref();
    match args.command {
        QueueCommand::List => {
            let queues = ctx.client.list_queues(tenant).await?;
            ctx.print(&queues, || render_queues(&queues))
        }
        QueueCommand::Dlq { queue } => {
            let letters = ctx.client.dead_letters(tenant, &queue).await?;
            ctx.print(&letters, || render_letters(&letters))
        }
        QueueCommand::Replay { queue, ids } => {
            let request = wire::Replay {
                ids: (!ids.is_empty()).then_some(ids),
            };
            let replayed = ctx.client.replay(tenant, &queue, &request).await?;
            ctx.print(&replayed, || {
                format!("replayed {} message(s) into {queue}\n", replayed.replayed)
            })
        }
    }
}

fn render_queues(queues: &[wire::QueueInfo]) -> String {
    if queues.is_empty() {
        return "no queues\n".to_owned();
    }
    let mut table = Table::new(&[
        ("TENANT", Align::Left),
        ("QUEUE", Align::Left),
        ("DEPTH", Align::Right),
        ("READY", Align::Right),
        ("DELAYED", Align::Right),
        ("IN FLIGHT", Align::Right),
        ("DEAD", Align::Right),
        ("SENT", Align::Right),
    ]);
    for q in queues {
        table.row(vec![
            q.tenant.clone(),
            q.queue.clone(),
            q.depth.to_string(),
            q.ready.to_string(),
            q.delayed.to_string(),
            q.in_flight.to_string(),
            q.dead.to_string(),
            q.sent_total.to_string(),
        ]);
    }
    table.render()
}

fn render_letters(letters: &[wire::DeadLetterInfo]) -> String {
    if letters.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("ATTEMPTS", Align::Right),
        ("DEAD SINCE", Align::Left),
        ("LAST ERROR", Align::Left),
        ("PAYLOAD", Align::Left),
    ]);
    for letter in letters {
        let payload: String = letter.payload.chars().take(60).collect();
        table.row(vec![
            letter.id.to_string(),
            letter.attempts.to_string(),
            table::time(letter.dead_at),
            letter.last_error.chars().take(80).collect(),
            payload,
        ]);
    }
    table.render()
}
