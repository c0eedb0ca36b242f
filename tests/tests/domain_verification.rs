//! Domain verification end to end: generate a token, publish it on a local DNS or HTTP
//! server, verify through the real adapters; the tables stay equal to the fold of the
//! events (`verify`).
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tenancy_challenge::{ChallengeConfig, Checker, HttpScheme};
use tenancy_core::Error;
use tenancy_core::challenge::{ChallengeFailure, ChallengeSettings, Publication};
use tenancy_core::command::{
    AddInstance, AddOrganization, AddOrganizationDomain, CommandContext, DomainValidation,
    GenerateOrganizationDomainValidation, ValidateOrganizationDomain, run,
};
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::ValidationType;
use tenancy_core::ports::{EventReader, OrgDomainRepository, UnitOfWorkFactory};
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::fixtures;
use tenancy_testkit::servers::{LocalDns, LocalHttp};

struct Setup {
    instance: InstanceId,
    org: OrgId,
}

async fn org_with_domain(
    store: &dyn UnitOfWorkFactory,
    ctx: &CommandContext,
    domain: &str,
) -> Setup {
    let instance = run(
        store,
        ctx,
        &AddInstance {
            name: "ACME".into(),
        },
    )
    .await
    .unwrap();
    let org = run(
        store,
        ctx,
        &AddOrganization {
            id: None,
            instance_id: instance.clone(),
            name: "Sales".into(),
        },
    )
    .await
    .unwrap();
    run(
        store,
        ctx,
        &AddOrganizationDomain {
            instance_id: instance.clone(),
            org_id: org.clone(),
            domain: domain.into(),
        },
    )
    .await
    .unwrap();
    Setup { instance, org }
}

async fn generate(
    store: &dyn UnitOfWorkFactory,
    ctx: &CommandContext,
    s: &Setup,
    domain: &str,
    validation_type: ValidationType,
    settings: ChallengeSettings,
) -> tenancy_core::Result<DomainValidation> {
    let command = GenerateOrganizationDomainValidation {
        instance_id: s.instance.clone(),
        org_id: s.org.clone(),
        domain: domain.into(),
        validation_type,
        settings,
    };
    run(store, ctx, &command).await
}

fn validate(s: &Setup, domain: &str) -> ValidateOrganizationDomain {
    ValidateOrganizationDomain {
        instance_id: s.instance.clone(),
        org_id: s.org.clone(),
        domain: domain.into(),
    }
}

async fn check(
    s: &Setup,
    domain: &str,
    store: &dyn UnitOfWorkFactory,
    events: &dyn EventReader,
    checker: &Checker,
    ctx: &CommandContext,
) -> tenancy_core::Result<()> {
    validate(s, domain).run(store, events, checker, ctx).await
}

async fn is_verified(store: &PgStore, s: &Setup) -> bool {
    let mut uow = store.session().await.unwrap();
    uow.list_org_domains(&s.instance, &s.org).await.unwrap()[0].is_verified
}

fn checker(dns: &LocalDns, http: Option<&LocalHttp>) -> Checker {
    Checker::new(ChallengeConfig {
        resolver: Some(dns.address()),
        timeout: Duration::from_millis(500),
        http_scheme: HttpScheme::Http,
        http_port: http.map(|h| h.address().port()),
        allow_private_targets: http.is_some(),
        ..ChallengeConfig::default()
    })
    .unwrap()
}

async fn failed_attempts(events: &dyn EventReader, s: &Setup) -> usize {
    events
        .read_aggregate(s.instance.as_str(), "org", s.org.as_str())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "org.domain.verification.failed")
        .count()
}

#[tokio::test]
async fn dns_verification_through_postgres_keeps_the_tables_equal_to_the_events() {
    let db = TestDatabase::fresh().await.unwrap();
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let store = PgStore::with_events(db.pool.clone(), events.clone());
    let ctx = fixtures::context();
    let dns = LocalDns::start().await.unwrap();
    let checker = checker(&dns, None);
    let s = org_with_domain(&store, &ctx, "Sales.ACME.example").await;

    // Nothing generated yet: say so, before any DNS traffic.
    let none = check(&s, "sales.acme.example", &store, &*events, &checker, &ctx).await;
    assert!(
        matches!(
            none,
            Err(Error::Challenge(ChallengeFailure::NotGenerated { .. }))
        ),
        "{none:?}"
    );
    assert!(dns.queries().is_empty());

    let first = generate(
        &store,
        &ctx,
        &s,
        "sales.acme.example",
        ValidationType::Dns,
        ChallengeSettings::default(),
    )
    .await
    .unwrap();
    let Publication::DnsTxt { name, value } = first.publication.clone() else {
        panic!("{:?}", first.publication)
    };
    assert_eq!(
        name,
        "_zitadel-challenge.Sales.ACME.example".to_ascii_lowercase()
    );
    assert_eq!(value, first.token);

    // Not published yet: the typed failure, recorded as an event, nothing verified.
    let missing = check(&s, "sales.acme.example", &store, &*events, &checker, &ctx).await;
    assert!(
        matches!(
            missing,
            Err(Error::Challenge(ChallengeFailure::RecordNotFound { .. }))
        ),
        "{missing:?}"
    );
    assert_eq!(failed_attempts(&*events, &s).await, 1);
    assert!(!is_verified(&store, &s).await);

    // A second token replaces the first: the first no longer verifies.
    let second = generate(
        &store,
        &ctx,
        &s,
        "sales.acme.example",
        ValidationType::Dns,
        ChallengeSettings::default(),
    )
    .await
    .unwrap();
    assert_ne!(first.token, second.token);
    dns.set_txt(&name, &[&first.token]);
    let stale = check(&s, "sales.acme.example", &store, &*events, &checker, &ctx).await;
    assert!(
        matches!(
            stale,
            Err(Error::Challenge(ChallengeFailure::Mismatch { .. }))
        ),
        "{stale:?}"
    );

    dns.set_txt(&name, &[&second.token]);
    check(&s, "SALES.acme.example", &store, &*events, &checker, &ctx)
        .await
        .unwrap();
    assert!(is_verified(&store, &s).await);

    let again = check(&s, "sales.acme.example", &store, &*events, &checker, &ctx).await;
    assert!(matches!(again, Err(Error::NoChanges(_))), "{again:?}");

    let engine = Engine::new(db.pool.clone(), EngineConfig::default());
    let report = engine.verify().await.unwrap();
    assert!(report.is_equal(), "{}", report.differences.join("\n"));
}

#[tokio::test]
async fn http_verification_and_expiry_on_the_in_memory_store() {
    let store = tenancy_testkit::InMemoryStore::new();
    let events = store.event_reader();
    let ctx = fixtures::context();
    let dns = LocalDns::start().await.unwrap();
    let http = LocalHttp::start().await.unwrap();
    dns.set_a("shop.example", &[Ipv4Addr::LOCALHOST]);
    let checker = checker(&dns, Some(&http));
    let s = org_with_domain(&store, &ctx, "shop.example").await;

    // The stepping clock moves 1 ms per read: a 1 ms token has expired when checked.
    let short = ChallengeSettings {
        lifetime: Duration::from_millis(1),
        ..ChallengeSettings::default()
    };
    generate(
        &store,
        &ctx,
        &s,
        "shop.example",
        ValidationType::Http,
        short,
    )
    .await
    .unwrap();
    let expired = check(&s, "shop.example", &store, &events, &checker, &ctx).await;
    assert!(
        matches!(
            expired,
            Err(Error::Challenge(ChallengeFailure::Expired { .. }))
        ),
        "{expired:?}"
    );
    assert!(
        http.requests().is_empty(),
        "an expired token is not checked"
    );

    let fresh = generate(
        &store,
        &ctx,
        &s,
        "shop.example",
        ValidationType::Http,
        ChallengeSettings::default(),
    )
    .await
    .unwrap();
    let Publication::HttpFile { url, content } = fresh.publication else {
        panic!("{:?}", fresh.publication)
    };
    let path = url.trim_start_matches("https://shop.example");
    http.put(path, content.as_bytes());
    check(&s, "shop.example", &store, &events, &checker, &ctx)
        .await
        .unwrap();
    let domains = store.state().org_domains(&s.instance, Some(&s.org));
    assert!(domains.len() == 1 && domains[0].is_verified, "{domains:?}");
}

#[tokio::test]
async fn unknown_domains_and_orgs_are_not_found_without_network_traffic() {
    let store = tenancy_testkit::InMemoryStore::new();
    let events = store.event_reader();
    let ctx = fixtures::context();
    let dns = LocalDns::start().await.unwrap();
    let checker = checker(&dns, None);
    let s = org_with_domain(&store, &ctx, "known.example").await;
    let unknown = check(&s, "unknown.example", &store, &events, &checker, &ctx).await;
    assert!(
        matches!(unknown, Err(Error::NotFound { .. })),
        "{unknown:?}"
    );
    let invalid = check(&s, "not a domain", &store, &events, &checker, &ctx).await;
    assert!(
        matches!(
            invalid,
            Err(Error::InvalidArgument {
                field: "domain",
                ..
            })
        ),
        "{invalid:?}"
    );
    let other_org = Setup {
        instance: s.instance.clone(),
        org: OrgId::new("nope").unwrap(),
    };
    let missing_org = check(&other_org, "known.example", &store, &events, &checker, &ctx).await;
    assert!(
        matches!(missing_org, Err(Error::NotFound { .. })),
        "{missing_org:?}"
    );
    assert!(dns.queries().is_empty());
}
