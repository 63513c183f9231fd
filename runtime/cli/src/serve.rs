//! `cloudware serve PATH.wasm`: serve one `wasi:http` component.

use crate::logging::LoggingArgs;
use crate::settings::{Resolved, RunArgs};
use anyhow::Context;
use clap::Args;
use cloudware_engine::{Engine, OutboundPolicy};
use cloudware_gateway::{Gateway, GatewayLimits, SingleComponent};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `cloudware serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The component to serve: a `.wasm` file exporting
    /// `wasi:http/incoming-handler@0.2.x`.
    pub component: PathBuf,
    /// Allow outbound HTTP to HOST, HOST:PORT, *.DOMAIN or * (repeatable);
    /// everything else is denied.
    #[arg(long = "allow-outbound", value_name = "HOST")]
    pub allow_outbound: Vec<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `serve` until SIGINT or SIGTERM.
pub fn run(args: ServeArgs, logging: &LoggingArgs) -> anyhow::Result<()> {
    let Resolved {
        limits,
        engine: engine_config,
        listen,
        allow_outbound,
        ..
    } = args.run.resolve(logging, None)?;
    let allow: Vec<String> = allow_outbound
        .into_iter()
        .chain(args.allow_outbound)
        .collect();
    let outbound = OutboundPolicy::allow(&allow)?;

    let engine = Engine::new(&engine_config, &limits)?;
    let component = engine
        .load_file(&args.component)
        .with_context(|| args.component.display().to_string())?
        .with_outbound(outbound);
    let digest = component.digest();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cloudware-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let router = std::sync::Arc::new(SingleComponent(component));
        let gateway = Gateway::bind(listen, router, GatewayLimits::from_engine(&limits))
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = gateway.local_addr()?;
        // The first line of stdout says where we serve (tests and scripts read it).
        let shutdown = shutdown_signal();
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "Serving {} ({digest}) on http://{addr}/",
            args.component.display()
        )?;
        stdout.flush()?;
        drop(stdout);
        tracing::info!(%addr, %digest, allocation = ?engine.allocation(), "serving");
        gateway.serve(shutdown).await;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when it is first polled: call it before announcing the
/// process as ready, so a signal sent right after the announcement is
/// never met by the default action (death by signal instead of a clean
/// shutdown).
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let terminate = async {
            match terminate {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        let interrupt = async {
            match interrupt {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = interrupt => {}
            () = terminate => {}
        }
    }
}
