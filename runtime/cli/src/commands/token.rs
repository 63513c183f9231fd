//! `cloudware token create --tenant T --role ROLE [--description D] | revoke ID | list`.

use super::global::ClientArgs;
use super::table::{self, Align, Table};
use super::{Ctx, parse, stdout};
use clap::{Args, Subcommand};
use cloudware_api::wire;

/// The roles a token can have.
const ROLES: [&str; 4] = ["operator", "developer", "site-builder", "viewer"];

/// Arguments of `cloudware token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// `cloudware token …`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once, as the last line.
    Create {
        /// The tenant it acts for (required except for operator tokens).
        #[arg(long, value_name = "TENANT", value_parser = parse::name)]
        tenant: Option<String>,
        /// What it may do.
        #[arg(long, value_name = "ROLE", value_parser = ROLES)]
        role: String,
        /// What it is for.
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
    },
    /// Revoke a token by its id (`tok_…`).
    Revoke {
        /// The token's id, as `token list` shows it.
        #[arg(value_name = "ID", value_parser = parse::name)]
        id: String,
    },
    /// List the tokens (never their secrets).
    List,
}

/// `cloudware token`.
pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    match args.command {
        TokenCommand::Create {
            tenant,
            role,
            description,
        } => {
            let request = wire::CreateToken {
                role,
                tenant,
                description,
            };
            let created = ctx.client.create_token(&request).await?;
            ctx.print(&created, || render_created(&created))
        }
        TokenCommand::Revoke { id } => {
            ctx.client.revoke_token(&id).await?;
            // 204: no JSON to print.
            if ctx.json() {
                Ok(())
            } else {
                stdout(&format!("revoked {id}\n"))
            }
        }
        TokenCommand::List => {
            let tokens = ctx.client.list_tokens().await?;
            ctx.print(&tokens, || render_tokens(&tokens))
        }
    }
}

fn render_created(created: &wire::CreatedToken) -> String {
    let info = &created.info;
    let tenant = match &info.tenant {
        Some(tenant) => format!("tenant {tenant}"),
        None => "all tenants".to_owned(),
    };
    format!(
        "created token {} ({}, {tenant})\n\
         Its secret follows; it is shown only this once, so store it now:\n\
         {}\n",
        info.id, info.role, created.token
    )
}

fn render_tokens(tokens: &[wire::TokenInfo]) -> String {
    if tokens.is_empty() {
        return "no tokens\n".to_owned();
    }
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("ROLE", Align::Left),
        ("TENANT", Align::Left),
        ("CREATED", Align::Left),
        ("REVOKED", Align::Left),
        ("DESCRIPTION", Align::Left),
    ]);
    for token in tokens {
        table.row(vec![
            token.id.clone(),
            token.role.clone(),
            token.tenant.clone().unwrap_or_else(|| "-".to_owned()),
            table::time(token.created_at),
            if token.revoked { "yes" } else { "" }.to_owned(),
            token.description.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, tenant: Option<&str>, revoked: bool) -> wire::TokenInfo {
        wire::TokenInfo {
            id: id.into(),
            role: "developer".into(),
            tenant: tenant.map(str::to_owned),
            description: "ci".into(),
            created_at: 0,
            revoked,
        }
    }

    #[test]
    fn created_token_ends_with_the_secret() {
        let created = wire::CreatedToken {
            info: info("tok_1", Some("acme"), false),
            token: "cw_s3cret".into(),
        };
        let text = render_created(&created);
        assert!(text.starts_with("created token tok_1 (developer, tenant acme)\n"));
        assert_eq!(text.lines().last(), Some("cw_s3cret"));
    }

    #[test]
    fn tokens_table() {
        assert_eq!(
            render_tokens(&[
                info("tok_1", Some("acme"), true),
                info("tok_22", None, false)
            ]),
            "\
ID      ROLE       TENANT  CREATED               REVOKED  DESCRIPTION
tok_1   developer  acme    1970-01-01T00:00:00Z  yes      ci
tok_22  developer  -       1970-01-01T00:00:00Z           ci
"
        );
    }
}
