//! `cloudware tenant create NAME | list`.

use super::global::ClientArgs;
use super::table::{self, Align, Table};
use super::{Ctx, parse};
use clap::{Args, Subcommand};
use cloudware_api::wire;

/// Arguments of `cloudware tenant`.
#[derive(Args, Debug)]
pub struct TenantArgs {
    #[command(subcommand)]
    pub command: TenantCommand,
    #[command(flatten)]
    pub global: ClientArgs,
}

/// `cloudware tenant …`.
#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant (operator tokens).
    Create {
        /// Its name: lowercase letters, digits and `-`.
        #[arg(value_name = "NAME", value_parser = parse::name)]
        name: String,
    },
    /// List the tenants.
    List,
}

/// `cloudware tenant`.
pub async fn run(args: TenantArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&args.global)?;
    match args.command {
        TenantCommand::Create { name } => {
            let tenant = ctx.client.create_tenant(&name).await?;
            ctx.print(&tenant, || format!("created tenant {}\n", tenant.name))
        }
        TenantCommand::List => {
            let tenants = ctx.client.list_tenants().await?;
            ctx.print(&tenants, || render_tenants(&tenants))
        }
    }
}

fn render_tenants(tenants: &[wire::TenantInfo]) -> String {
    if tenants.is_empty() {
        return "no tenants\n".to_owned();
    }
    let mut table = Table::new(&[("NAME", Align::Left), ("CREATED", Align::Left)]);
    for tenant in tenants {
        table.row(vec![tenant.name.clone(), table::time(tenant.created_at)]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_table() {
        let tenants = [wire::TenantInfo {
            name: "acme".into(),
            created_at: 0,
        }];
        assert_eq!(
            render_tenants(&tenants),
            "NAME  CREATED\nacme  1970-01-01T00:00:00Z\n"
        );
    }
}
