//! `cloudware partner add|list|remove|platform-key|call`: outside systems
//! calling exported functions through the gateway's signed `POST /openapi`.

use super::global::ClientArgs;
use super::table::{self, Align, Table};
use super::{Ctx, Failure, parse, stdout};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use cloudware_api::wire;
use std::path::PathBuf;

/// Arguments of `cloudware partner`.
#[derive(Args, Debug)]
pub struct PartnerArgs {
    #[command(subcommand)]
    pub command: PartnerCommand,
    /// The partner's tenant (operator tokens; others act for their own).
    #[arg(long, global = true, value_name = "TENANT", value_parser = parse::name)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// `cloudware partner …`.
#[derive(Subcommand, Debug)]
pub enum PartnerCommand {
    /// Register a partner by its RSA public key; prints its `app_id`.
    Add {
        /// A name for people.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The partner's RSA public key: a PEM file (or base64 DER).
        #[arg(long = "public-key", value_name = "FILE")]
        public_key: PathBuf,
        /// A method it may call, `APP.FUNCTION` (repeatable).
        #[arg(long = "method", value_name = "APP.FUNCTION", required = true)]
        methods: Vec<String>,
    },
    /// List the partners.
    List,
    /// Remove a partner.
    Remove {
        /// Its app_id.
        #[arg(value_name = "APP_ID")]
        app_id: String,
    },
    /// Print the platform's public key that signs partner API replies.
    PlatformKey,
    /// Send a signed request to a gateway's `POST /openapi`, as a partner
    /// would, and print the verified reply.
    Call {
        /// The gateway, e.g. `http://127.0.0.1:8080`.
        #[arg(long, value_name = "URL")]
        gateway: String,
        /// The partner's app_id.
        #[arg(long = "app-id", value_name = "APP_ID")]
        app_id: String,
        /// The partner's private key (PEM).
        #[arg(long = "private-key", value_name = "FILE")]
        private_key: PathBuf,
        /// The method, `APP.FUNCTION`.
        #[arg(long, value_name = "APP.FUNCTION")]
        method: String,
        /// The arguments, a JSON object by parameter name.
        #[arg(long = "biz-content", value_name = "JSON", default_value = "{}")]
        biz_content: String,
    },
}

/// `cloudware partner`.
pub async fn run(args: PartnerArgs) -> anyhow::Result<()> {
    if let PartnerCommand::Call {
        gateway,
        app_id,
        private_key,
        method,
        biz_content,
    } = args.command
    {
        return call(&gateway, &app_id, &private_key, &method, &biz_content).await;
    }
    let ctx = Ctx::new(&args.global)?;
    let tenant = args.tenant.as_deref();
    match args.command {
        PartnerCommand::Add {
            name,
            public_key,
            methods,
        } => {
            let public_key = std::fs::read_to_string(&public_key).map_err(|err| {
                Failure::usage(format!("cannot read {}: {err}", public_key.display()))
            })?;
            let request = wire::CreatePartner {
                name,
                public_key,
                methods,
            };
            let partner = ctx.client.create_partner(tenant, &request).await?;
            ctx.print(&partner, || {
                format!(
                    "registered partner {} ({}) for tenant {}; it may call {}\napp_id: {}\n",
                    partner.name,
                    partner.app_id,
                    partner.tenant,
                    partner.methods.join(", "),
                    partner.app_id
                )
            })
        }
        PartnerCommand::List => {
            let partners = ctx.client.list_partners(tenant).await?;
            ctx.print(&partners, || render(&partners))
        }
        PartnerCommand::Remove { app_id } => {
            ctx.client.remove_partner(tenant, &app_id).await?;
            if ctx.json() {
                Ok(())
            } else {
                stdout(&format!("removed partner {app_id}\n"))
            }
        }
        PartnerCommand::PlatformKey => {
            let key = ctx.client.platform_key().await?;
            ctx.print(&key, || key.public_key.clone())
        }
        PartnerCommand::Call { .. } => unreachable!("handled above"),
    }
}

/// Signs and sends one partner request; prints the reply's `response`
/// object after checking nothing (the platform key is not known here; use
/// `platform-key` and verify with any RSA tool, or trust the transport).
async fn call(
    gateway: &str,
    app_id: &str,
    private_key: &PathBuf,
    method: &str,
    biz_content: &str,
) -> anyhow::Result<()> {
    let pem = std::fs::read_to_string(private_key)
        .map_err(|err| Failure::usage(format!("cannot read {}: {err}", private_key.display())))?;
    let key = cloudware_partner::parse_private_key(&pem)
        .map_err(|err| Failure::usage(format!("{}: {err}", private_key.display())))?;
    let fields = cloudware_partner::request_fields(
        app_id,
        method,
        biz_content,
        std::time::SystemTime::now(),
    );
    let body = cloudware_partner::sign_request(&key, &fields).context("cannot sign")?;
    let url = format!("{}/openapi", gateway.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response.text().await.context("cannot read the reply")?;
    stdout(&format!("{text}\n"))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure::usage(format!("the partner API answered {status}")).into())
    }
}

fn render(partners: &[wire::PartnerInfo]) -> String {
    if partners.is_empty() {
        return "no partners\n".to_owned();
    }
    let mut table = Table::new(&[
        ("APP_ID", Align::Left),
        ("NAME", Align::Left),
        ("TENANT", Align::Left),
        ("METHODS", Align::Left),
        ("CREATED", Align::Left),
    ]);
    for partner in partners {
        table.row(vec![
            partner.app_id.clone(),
            partner.name.clone(),
            partner.tenant.clone(),
            partner.methods.join(","),
            table::time(partner.created_at),
        ]);
    }
    table.render()
}
