//! `tenancy org-domains`: generate a validation token for an org domain and verify it
//! (DNS TXT record or HTTP file), through the v3 commands.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use tenancy_challenge::Checker;
use tenancy_core::challenge::{OsTokens, Publication};
use tenancy_core::command::{
    CommandContext, GenerateOrganizationDomainValidation, ValidateOrganizationDomain, run,
};
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::ValidationType;
use tenancy_core::ports::SystemClock;
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;

use crate::settings::Settings;

#[derive(Subcommand)]
pub enum OrgDomainAction {
    /// Generate a token for a domain and print what to publish.
    GenerateValidation {
        #[arg(long)]
        instance: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        domain: String,
        #[arg(long, value_enum)]
        method: Method,
    },
    /// Check the published token; on success the domain is verified.
    Verify {
        #[arg(long)]
        instance: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        domain: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Method {
    Dns,
    Http,
}

pub async fn run_action(
    action: OrgDomainAction,
    pool: &sqlx::PgPool,
    settings: &Settings,
) -> Result<ExitCode> {
    let events = Arc::new(PgEventStore::new(pool.clone()));
    let store = PgStore::with_events(pool.clone(), events.clone());
    let ctx = CommandContext {
        clock: Arc::new(SystemClock),
        ids: Arc::new(tenancy_postgres::ids::LeasedIds::lease(pool).await?),
        tokens: Arc::new(OsTokens),
        creator: "tenancy-cli".into(),
    };
    match action {
        OrgDomainAction::GenerateValidation {
            instance,
            org,
            domain,
            method,
        } => {
            let command = GenerateOrganizationDomainValidation {
                instance_id: InstanceId::new(instance)?,
                org_id: OrgId::new(org)?,
                domain,
                validation_type: match method {
                    Method::Dns => ValidationType::Dns,
                    Method::Http => ValidationType::Http,
                },
                settings: settings.verification.tokens(),
            };
            let generated = run(&store, &ctx, &command).await?;
            match &generated.publication {
                Publication::DnsTxt { name, value } => {
                    println!("publish a TXT record\n  name:  {name}\n  value: {value}");
                }
                Publication::HttpFile { url, content } => {
                    println!("serve a file\n  url:     {url}\n  content: {content}");
                }
            }
            println!("token: {}", generated.token);
            println!("expires at: {}", generated.expires_at);
            Ok(ExitCode::SUCCESS)
        }
        OrgDomainAction::Verify {
            instance,
            org,
            domain,
        } => {
            let checker = Checker::new(settings.verification.challenge())?;
            let verify = ValidateOrganizationDomain {
                instance_id: InstanceId::new(instance)?,
                org_id: OrgId::new(org)?,
                domain: domain.clone(),
            };
            verify.run(&store, &*events, &checker, &ctx).await?;
            println!("{domain} is verified");
            Ok(ExitCode::SUCCESS)
        }
    }
}
