//! The service API as a client meets it: a gRPC client (tonic, HTTP/2 on 127.0.0.1)
//! against `tenancy-api` served over PostgreSQL, as `tenancy start` serves it.
//! - Host resolution (`ResolveHost`, answered from the host cache) against the raw
//!   prepared SELECT on one local connection, both one call after the other;
//! - `ListOrganizations`, 100 per page, over N organizations of one instance: a keyset
//!   walk over every page against offset paging at the last page (with its total).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use tenancy_api::auth::{ApiTokens, TokenEntry, token_digest};
use tenancy_api::pb::filter::v2::PaginationRequest;
use tenancy_api::pb::instance::v2::ResolveHostRequest;
use tenancy_api::pb::instance::v2::instance_service_client::InstanceServiceClient;
use tenancy_api::pb::org::v2::organization_service_client::OrganizationServiceClient;
use tenancy_api::pb::org::v2::{ListOrganizationsRequest, OrgFieldName};
use tenancy_api::{Api, router};
use tenancy_core::challenge::{
    Challenge, ChallengeFailure, ChallengeSettings, DomainChallenge, OsTokens,
};
use tenancy_core::page_token::PageTokens;
use tenancy_core::ports::{SonyflakeGenerator, SystemClock};
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_postgres::hosts::{HostResolver, HostResolverConfig};
use tenancy_testkit::db::TestDatabase;
use tonic::transport::Channel;

use crate::lookup::{fill_hosts, raw_select, sample_hosts};
use crate::{Args, Figure, percentile_ms};

const TOKEN: &str = "bench-system-token";
const PAGE: u32 = 100;

/// The benchmark verifies no domains.
struct NoChecks;

#[async_trait::async_trait]
impl DomainChallenge for NoChecks {
    async fn check(&self, challenge: &Challenge) -> Result<(), ChallengeFailure> {
        Err(ChallengeFailure::RecordNotFound {
            name: challenge.domain.to_string(),
        })
    }
}

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let (host_sizes, org_sizes): (&[i32], &[i32]) = if args.quick {
        (&[200], &[2_000])
    } else {
        (&[1_000, 10_000], &[10_000, 100_000])
    };
    let calls = if args.quick { 2_000 } else { 20_000 };
    let mut figures = Vec::new();
    for &instances in host_sizes {
        figures.extend(host_resolution(instances, calls).await?);
    }
    for &orgs in org_sizes {
        figures.push(list_organizations(orgs).await?);
    }
    Ok(figures)
}

/// Serves the API over `db` on 127.0.0.1 and connects a gRPC channel to it.
async fn serve(db: &TestDatabase) -> Result<Channel> {
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let api = Api {
        factory: Arc::new(PgStore::with_events(db.pool.clone(), events.clone())),
        events,
        hosts: Arc::new(HostResolver::start(db.pool.clone(), HostResolverConfig::default()).await?),
        checker: Arc::new(NoChecks),
        challenge: ChallengeSettings {
            prefix: "tenancy".into(),
            lifetime: std::time::Duration::from_secs(3600),
        },
        clock: Arc::new(SystemClock),
        ids: Arc::new(SonyflakeGenerator::new(1)),
        tokens: Arc::new(OsTokens),
        page_tokens: PageTokens::new(vec![3u8; 32])?,
    };
    let tokens = ApiTokens::new(&[TokenEntry {
        name: "bench".into(),
        sha256: token_digest(TOKEN),
        instance_id: None,
    }])?;
    let routes = router(api, tokens, tenancy_api::DEFAULT_MAX_REQUEST_BYTES)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(tenancy_api::listener(listener), routes).await });
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

fn authed<T>(message: T, instance: Option<&str>) -> Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse()?);
    if let Some(instance) = instance {
        request
            .metadata_mut()
            .insert("x-tenancy-instance-id", instance.parse()?);
    }
    Ok(request)
}

async fn host_resolution(instances: i32, calls: usize) -> Result<Vec<Figure>> {
    let db = TestDatabase::fresh().await?;
    fill_hosts(&db.pool, instances).await?;
    let hosts = sample_hosts(instances, calls, 17);
    let (raw, mut raw_samples) = raw_select(&db.options, &hosts).await?;
    let mut client = InstanceServiceClient::new(serve(&db).await?);
    // A server that has run for a while: every host asked once.
    for n in 1..=instances {
        let host = format!("login.i{n}.example");
        client
            .resolve_host(authed(
                ResolveHostRequest {
                    host,
                    organization_domain: String::new(),
                },
                None,
            )?)
            .await?;
    }
    let mut samples = Vec::with_capacity(calls);
    let started = Instant::now();
    for host in &hosts {
        let t = Instant::now();
        let request = ResolveHostRequest {
            host: host.clone(),
            organization_domain: String::new(),
        };
        client.resolve_host(authed(request, None)?).await?;
        samples.push(t.elapsed());
    }
    let ours = calls as f64 / started.elapsed().as_secs_f64();

    // Many callers at once, as login services meet it: the API's answers come from the
    // cache, the baseline's from PostgreSQL over as many connections.
    let parallel_raw = in_parallel(&hosts, |share| {
        let options = db.options.clone();
        async move { raw_select(&options, &share).await.map(|_| ()) }
    })
    .await?;
    let parallel_ours = in_parallel(&hosts, |share| {
        let mut client = client.clone();
        async move {
            for host in share {
                let request = ResolveHostRequest {
                    host,
                    organization_domain: String::new(),
                };
                client.resolve_host(authed(request, None)?).await?;
            }
            Ok(())
        }
    })
    .await?;
    println!(
        "API ResolveHost ({instances} instances, {IN_FLIGHT} in flight): {parallel_ours:.0} calls/s; raw SELECT over {IN_FLIGHT} connections {parallel_raw:.0}/s"
    );
    let (ours_p99, raw_p99) = (
        percentile_ms(&mut samples, 0.99),
        percentile_ms(&mut raw_samples, 0.99),
    );
    println!(
        "API ResolveHost ({instances} instances): {ours:.0} calls/s (p99 {ours_p99:.3} ms); raw SELECT {raw:.0}/s (p99 {raw_p99:.3} ms)"
    );
    let parameters = json!({"instances": instances, "calls": calls, "in_flight": 1});
    Ok(vec![
        Figure::throughput(
            &format!("API ResolveHost {instances}, {IN_FLIGHT} in flight"),
            parallel_ours,
            parallel_raw,
            &format!("raw prepared SELECT, {IN_FLIGHT} local connections"),
            "calls/s",
            json!({"instances": instances, "calls": calls, "in_flight": IN_FLIGHT}),
        ),
        Figure::throughput(
            &format!("API ResolveHost {instances}"),
            ours,
            raw,
            "raw prepared SELECT, one local connection",
            "calls/s",
            parameters.clone(),
        ),
        Figure::latency(
            &format!("API ResolveHost p99 {instances}"),
            ours_p99,
            raw_p99,
            "raw prepared SELECT p99",
            "ms",
            parameters,
        ),
    ])
}

const IN_FLIGHT: usize = 16;

/// Runs `work` on `IN_FLIGHT` shares of `hosts` at once; calls/s over all of them.
async fn in_parallel<F, Fut>(hosts: &[String], work: F) -> Result<f64>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let share = hosts.len().div_ceil(IN_FLIGHT);
    let started = Instant::now();
    let tasks: Vec<_> = hosts
        .chunks(share)
        .map(|chunk| tokio::spawn(work(chunk.to_vec())))
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(hosts.len() as f64 / started.elapsed().as_secs_f64())
}

async fn list_organizations(orgs: i32) -> Result<Figure> {
    let db = TestDatabase::fresh().await?;
    crate::paging::fill_orgs(&db.pool, orgs).await?;
    let mut client = OrganizationServiceClient::new(serve(&db).await?);
    let list = |offset: u64, page_token: String| ListOrganizationsRequest {
        pagination: Some(PaginationRequest {
            offset,
            limit: PAGE,
            asc: true,
            page_token,
        }),
        sorting_column: OrgFieldName::Name.into(),
        filters: vec![],
    };

    // Keyset: the whole walk; the first page is an offset request (it counts the total).
    let started = Instant::now();
    let (mut pages, mut token) = (0u32, String::new());
    loop {
        let response = client
            .list_organizations(authed(list(0, token), Some("i1"))?)
            .await?
            .into_inner();
        pages += 1;
        token = response
            .pagination
            .map(|p| p.next_page_token)
            .unwrap_or_default();
        if token.is_empty() {
            break;
        }
    }
    let keyset = f64::from(pages) / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        i64::from(pages) * i64::from(PAGE) >= i64::from(orgs),
        "the walk saw every page"
    );

    // Offset: the last page, repeatedly, with its total as ZITADEL answers it.
    let last = u64::try_from(orgs)? - u64::from(PAGE);
    let repeats = 20;
    let started = Instant::now();
    for _ in 0..repeats {
        let response = client
            .list_organizations(authed(list(last, String::new()), Some("i1"))?)
            .await?
            .into_inner();
        anyhow::ensure!(
            response.organizations.len() == PAGE as usize,
            "the last page is full"
        );
    }
    let offset = f64::from(repeats) / started.elapsed().as_secs_f64();
    println!(
        "API ListOrganizations ({orgs}): keyset {keyset:.0} pages/s over {pages} pages; offset at the last page {offset:.1} pages/s"
    );
    Ok(Figure::throughput(
        &format!("API list orgs keyset, {orgs} orgs"),
        keyset,
        offset,
        "API offset paging at the last page (with total)",
        "pages/s",
        json!({"orgs": orgs, "page": PAGE, "pages": pages}),
    ))
}
