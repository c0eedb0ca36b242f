//! Repository behaviour against a real PostgreSQL (a fresh database per test).
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use tenancy_core::Error;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{InstanceDomainKind, OrganizationState, ValidationType};
use tenancy_core::ports::{
    DomainRepository, InstanceDomainRepository, InstanceRepository, OrgDomainRepository,
    OrganizationRepository, UnitOfWork,
};
use tenancy_core::query::{
    DomainCriteria, DomainOwner, DomainSort, InstanceCriteria, OrganizationCriteria, Pagination,
    SortOrder, TextMatch,
};
use tenancy_core::state::{InstanceUpdate, OrganizationUpdate};
use tenancy_postgres::{PgSession, PgStore};
use tenancy_testkit::db::TestDatabase;
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

fn iid(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}
fn oid(s: &str) -> OrgId {
    OrgId::new(s).unwrap()
}

async fn setup() -> (TestDatabase, PgStore, PgSession) {
    let db = TestDatabase::fresh().await.expect("test database");
    let store = PgStore::new(db.pool.clone());
    let mut s = store.session().await.unwrap();
    for i in ["a", "b"] {
        s.create_instance(&iid(i), &format!("Instance {i}"), T0)
            .await
            .unwrap();
        s.create_organization(&iid(i), &oid("o1"), "Org One", T0)
            .await
            .unwrap();
        s.create_organization(&iid(i), &oid("o2"), "Org Two", T0)
            .await
            .unwrap();
    }
    (db, store, s)
}

#[tokio::test]
async fn instance_lifecycle_soft_delete_and_revival() {
    let (_db, _store, mut s) = setup().await;
    let a = iid("a");
    assert!(matches!(
        s.create_instance(&a, "again", T0).await,
        Err(Error::AlreadyExists {
            rule: tenancy_core::Rule::InstanceId,
            ..
        })
    ));
    let update = InstanceUpdate {
        default_language: Some("de".into()),
        ..InstanceUpdate::default()
    };
    assert_eq!(
        s.update_instance(&a, &update, datetime!(2026-01-02 00:00:00 UTC))
            .await
            .unwrap(),
        1
    );
    let got = s.get_instance(&a).await.unwrap();
    assert_eq!(got.default_language.as_deref(), Some("de"));
    assert_eq!(
        got.updated_at,
        datetime!(2026-01-02 00:00:00 UTC),
        "the event time, not now()"
    );
    assert_eq!(got.name, "Instance a", "None leaves a column as is");
    assert_eq!(s.remove_instance(&a, T0).await.unwrap(), 1);
    assert!(matches!(
        s.get_instance(&a).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        s.update_instance(&a, &update, T0).await.unwrap(),
        0,
        "removed rows are not changed"
    );
    let all = s
        .list_instances(
            &InstanceCriteria {
                include_deleted: true,
                ..Default::default()
            },
            &Pagination::default(),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    s.create_instance(&a, "Reborn", T0).await.unwrap();
    let reborn = s.get_instance(&a).await.unwrap();
    assert_eq!(
        (reborn.name.as_str(), reborn.default_language),
        ("Reborn", None),
        "comes back as new"
    );
}

#[tokio::test]
async fn organization_names_are_unique_among_live_rows() {
    let (_db, _store, mut s) = setup().await;
    let a = iid("a");
    let dup = s.create_organization(&a, &oid("o3"), "ORG ONE", T0).await;
    assert!(
        matches!(
            dup,
            Err(Error::AlreadyExists {
                rule: tenancy_core::Rule::OrganizationName,
                ..
            })
        ),
        "{dup:?}"
    );
    s.create_organization(&iid("b"), &oid("o3"), "Org Three", T0)
        .await
        .unwrap();
    s.remove_organization(&a, &oid("o1"), T0).await.unwrap();
    s.create_organization(&a, &oid("o3"), "Org One", T0)
        .await
        .unwrap();
    let update = OrganizationUpdate {
        state: Some(OrganizationState::Inactive),
        name: None,
    };
    assert_eq!(
        s.update_organization(&a, &oid("o3"), &update, T0)
            .await
            .unwrap(),
        1
    );
    let criteria = OrganizationCriteria {
        instance_id: Some(a.clone()),
        state: Some(OrganizationState::Inactive),
        ..Default::default()
    };
    let inactive = s
        .list_organizations(&criteria, &Pagination::default())
        .await
        .unwrap();
    assert_eq!(inactive.len(), 1);
    let missing = s
        .list_organizations(&OrganizationCriteria::default(), &Pagination::default())
        .await;
    assert!(matches!(missing, Err(Error::MissingTenant(_))));
    let fk = s
        .create_organization(&iid("nope"), &oid("x"), "X", T0)
        .await;
    assert!(
        matches!(
            fk,
            Err(Error::NotFound {
                kind: "instance",
                ..
            })
        ),
        "{fk:?}"
    );
    let empty = s.create_organization(&a, &oid("o9"), "", T0).await;
    assert!(
        matches!(empty, Err(Error::InvalidArgument { field: "name", .. })),
        "{empty:?}"
    );
}

#[tokio::test]
async fn custom_domains_are_global_trusted_per_instance() {
    let (_db, _store, mut s) = setup().await;
    let custom = InstanceDomainKind::Custom {
        is_primary: false,
        is_generated: false,
    };
    s.insert_instance_domain(&iid("a"), "Login.Example", custom, T0)
        .await
        .unwrap();
    let taken = s
        .insert_instance_domain(&iid("b"), "login.example", custom, T0)
        .await;
    assert!(
        matches!(
            taken,
            Err(Error::AlreadyExists {
                rule: tenancy_core::Rule::CustomInstanceDomain,
                ..
            })
        ),
        "{taken:?}"
    );
    s.insert_instance_domain(&iid("a"), "t.example", InstanceDomainKind::Trusted, T0)
        .await
        .unwrap();
    s.insert_instance_domain(&iid("b"), "t.example", InstanceDomainKind::Trusted, T0)
        .await
        .unwrap();
    let dup = s
        .insert_instance_domain(&iid("a"), "T.example", InstanceDomainKind::Trusted, T0)
        .await;
    assert!(
        matches!(
            dup,
            Err(Error::AlreadyExists {
                rule: tenancy_core::Rule::TrustedInstanceDomain,
                ..
            })
        ),
        "{dup:?}"
    );
    let long = format!("{}.example", "a".repeat(250));
    let too_long = s.insert_instance_domain(&iid("a"), &long, custom, T0).await;
    assert!(
        matches!(
            too_long,
            Err(Error::InvalidArgument {
                field: "domain",
                ..
            })
        ),
        "{too_long:?}"
    );
    assert_eq!(
        s.instance_by_host("LOGIN.example").await.unwrap().id,
        iid("a")
    );
    assert!(
        matches!(
            s.instance_by_host("t.example").await,
            Err(Error::NotFound { .. })
        ),
        "trusted domains do not resolve"
    );
    s.remove_instance(&iid("a"), T0).await.unwrap();
    assert!(matches!(
        s.instance_by_host("login.example").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn unified_domains_rules_and_text_matches() {
    let (_db, _store, mut s) = setup().await;
    let (a, b) = (iid("a"), iid("b"));
    s.add_instance_domain(&a, "a.example", T0).await.unwrap();
    assert!(matches!(
        s.add_instance_domain(&b, "A.EXAMPLE", T0).await,
        Err(Error::AlreadyExists { .. })
    ));
    for (i, d) in ["50%_off.example", "50xxoff.example", "plain.example"]
        .iter()
        .enumerate()
    {
        let at = T0 + time::Duration::seconds(i as i64);
        s.add_organization_domain(&a, &oid("o1"), d, Some(ValidationType::Dns), at)
            .await
            .unwrap();
    }
    s.add_organization_domain(&a, &oid("o2"), "plain.example", None, T0)
        .await
        .unwrap();
    s.add_organization_domain(&b, &oid("o1"), "plain.example", None, T0)
        .await
        .unwrap();
    let list = |m: TextMatch| DomainCriteria::of_instance(&a).domain(m);
    let page = Pagination::<DomainSort>::default();
    let count = |rows: Vec<tenancy_core::model::Domain>| rows.len();
    assert_eq!(
        count(
            s.list_domains(&list(TextMatch::starts_with("50%_")), &page)
                .await
                .unwrap()
        ),
        1,
        "% and _ are literal"
    );
    assert_eq!(
        count(
            s.list_domains(&list(TextMatch::contains("%")), &page)
                .await
                .unwrap()
        ),
        1
    );
    assert_eq!(
        count(
            s.list_domains(
                &list(TextMatch::ends_with(".EXAMPLE").ignoring_case()),
                &page
            )
            .await
            .unwrap()
        ),
        5
    );
    assert_eq!(
        count(
            s.list_domains(&list(TextMatch::ends_with(".EXAMPLE")), &page)
                .await
                .unwrap()
        ),
        0
    );
    assert_eq!(
        count(
            s.list_domains(
                &list(TextMatch::equals("PLAIN.example").ignoring_case()),
                &page
            )
            .await
            .unwrap()
        ),
        2
    );
    let only_instance = DomainCriteria::of_instance(&a).owner(DomainOwner::InstanceOnly);
    assert!(
        s.get_domain(&only_instance).await.unwrap().is_verified,
        "instance domains are verified"
    );
    assert!(matches!(
        s.get_domain(&DomainCriteria::of_instance(&a)).await,
        Err(Error::MultipleFound { .. })
    ));
    assert!(matches!(
        s.get_domain(&list(TextMatch::equals("none"))).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.list_domains(&DomainCriteria::default(), &page).await,
        Err(Error::MissingTenant(_))
    ));

    // A verified domain belongs to one org per instance.
    assert_eq!(
        s.set_organization_domain_verified(&a, &oid("o1"), "plain.example", T0)
            .await
            .unwrap(),
        1
    );
    let second = s
        .set_organization_domain_verified(&a, &oid("o2"), "plain.example", T0)
        .await;
    assert!(
        matches!(
            second,
            Err(Error::AlreadyExists {
                rule: tenancy_core::Rule::VerifiedOrganizationDomain,
                ..
            })
        ),
        "{second:?}"
    );
    s.set_organization_domain_verified(&b, &oid("o1"), "plain.example", T0)
        .await
        .unwrap();

    // Pagination is stable across pages, in both directions.
    let mut seen = Vec::new();
    for offset in 0..6 {
        let p = Pagination::page(DomainSort::Domain, SortOrder::Descending, 1, offset);
        seen.extend(
            s.list_domains(&DomainCriteria::of_instance(&a), &p)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id),
        );
    }
    let all = s
        .list_domains(
            &DomainCriteria::of_instance(&a),
            &Pagination::page(DomainSort::Domain, SortOrder::Descending, 10, 0),
        )
        .await
        .unwrap();
    assert_eq!(seen, all.iter().map(|d| d.id).collect::<Vec<_>>());
    assert_eq!(seen.len(), 5);

    // Soft delete and re-add of the same domain.
    assert_eq!(
        s.remove_organization_domain(&a, &oid("o1"), "PLAIN.example", T0)
            .await
            .unwrap(),
        1
    );
    s.add_organization_domain(&a, &oid("o1"), "plain.example", None, T0)
        .await
        .unwrap();
    let with_deleted = DomainCriteria::of_instance(&a)
        .owner(DomainOwner::Organization(oid("o1")))
        .domain(TextMatch::equals("plain.example"))
        .including_deleted();
    assert_eq!(
        count(s.list_domains(&with_deleted, &page).await.unwrap()),
        2
    );

    // Tenant isolation: instance b's calls never touch a's rows.
    assert_eq!(s.remove_domains_of_instance(&b, T0).await.unwrap(), 1);
    assert_eq!(
        count(
            s.list_domains(&DomainCriteria::of_instance(&a), &page)
                .await
                .unwrap()
        ),
        5
    );
}

#[tokio::test]
async fn org_domain_rules_and_removal_cascade() {
    let (_db, _store, mut s) = setup().await;
    let a = iid("a");
    for d in ["x.example", "y.example"] {
        s.insert_org_domain(&a, &oid("o1"), d, T0).await.unwrap();
        s.set_org_domain_verified(&a, &oid("o1"), d, T0)
            .await
            .unwrap();
    }
    s.insert_org_domain(&a, &oid("o2"), "x.example", T0)
        .await
        .unwrap();
    let verify = s
        .set_org_domain_verified(&a, &oid("o2"), "X.example", T0)
        .await;
    assert!(
        matches!(
            verify,
            Err(Error::AlreadyExists {
                rule: tenancy_core::Rule::VerifiedOrganizationDomain,
                ..
            })
        ),
        "{verify:?}"
    );
    s.set_org_domain_validation(&a, &oid("o2"), "x.example", ValidationType::Http, T0)
        .await
        .unwrap();
    s.set_primary_org_domain(&a, &oid("o1"), "x.example", T0)
        .await
        .unwrap();
    s.set_primary_org_domain(&a, &oid("o1"), "y.example", T0)
        .await
        .unwrap();
    let rows = s.list_org_domains(&a, &oid("o1")).await.unwrap();
    assert_eq!(
        rows.iter()
            .filter(|d| d.is_primary)
            .map(|d| d.domain.as_str())
            .collect::<Vec<_>>(),
        ["y.example"]
    );
    assert_eq!(
        s.set_primary_org_domain(&a, &oid("o1"), "nope.example", T0)
            .await
            .unwrap(),
        0,
        "a missing row changes nothing"
    );
    assert_eq!(
        s.list_org_domains(&a, &oid("o1"))
            .await
            .unwrap()
            .iter()
            .filter(|d| d.is_primary)
            .count(),
        1
    );
    assert_eq!(
        s.list_org_domains(&a, &oid("o2")).await.unwrap()[0].validation_type,
        Some(ValidationType::Http)
    );
    assert_eq!(s.delete_org_domains_of_instance(&a).await.unwrap(), 3);
    assert!(
        s.list_org_domains(&iid("b"), &oid("o1"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn concurrent_primary_switches_end_with_one_primary() {
    let (_db, store, mut s) = setup().await;
    let a = iid("a");
    let custom = InstanceDomainKind::Custom {
        is_primary: false,
        is_generated: false,
    };
    for d in ["p1.example", "p2.example", "p3.example"] {
        s.insert_instance_domain(&a, d, custom, T0).await.unwrap();
    }
    s.set_primary_instance_domain(&a, "p1.example", T0)
        .await
        .unwrap();
    let mut tx1 = store.transaction().await.unwrap();
    let mut tx2 = store.transaction().await.unwrap();
    tx1.set_primary_instance_domain(&a, "p2.example", T0)
        .await
        .unwrap();
    let second = tokio::spawn(async move {
        let r = tx2.set_primary_instance_domain(&a, "p3.example", T0).await;
        tx2.commit().await.unwrap();
        r
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tx1.commit().await.unwrap();
    second.await.unwrap().unwrap();
    let primaries: Vec<_> = s
        .list_instance_domains(&iid("a"))
        .await
        .unwrap()
        .into_iter()
        .filter(|d| {
            matches!(
                d.kind,
                InstanceDomainKind::Custom {
                    is_primary: true,
                    ..
                }
            )
        })
        .map(|d| d.domain)
        .collect();
    assert_eq!(
        primaries,
        ["p3.example"],
        "the later switch wins, never two primaries"
    );
}

#[tokio::test]
async fn concurrent_verification_of_one_domain_lets_exactly_one_org_win() {
    let (_db, store, mut s) = setup().await;
    let a = iid("a");
    for o in ["o1", "o2"] {
        s.add_organization_domain(&a, &oid(o), "race.example", None, T0)
            .await
            .unwrap();
    }
    let mut tx1 = store.transaction().await.unwrap();
    let mut tx2 = store.transaction().await.unwrap();
    tx1.set_organization_domain_verified(&a, &oid("o1"), "race.example", T0)
        .await
        .unwrap();
    let a2 = a.clone();
    let second = tokio::spawn(async move {
        tx2.set_organization_domain_verified(&a2, &oid("o2"), "race.example", T0)
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tx1.commit().await.unwrap();
    let lost = second.await.unwrap();
    assert!(
        matches!(
            lost,
            Err(Error::AlreadyExists {
                rule: tenancy_core::Rule::VerifiedOrganizationDomain,
                ..
            })
        ),
        "{lost:?}"
    );
}

#[tokio::test]
async fn migrations_are_idempotent_and_reported() {
    let db = TestDatabase::fresh().await.unwrap();
    assert!(
        tenancy_postgres::migrate::migrate(&db.pool)
            .await
            .unwrap()
            .is_empty(),
        "the template is migrated"
    );
    let status = tenancy_postgres::migrate::status(&db.pool).await.unwrap();
    assert!(status.len() >= 3 && status.iter().all(|m| m.applied));
}

#[tokio::test]
async fn state_change_entry_points_plan_with_seqscan_disabled() {
    // Plans cached while the tables were empty must not turn into sequential scans of
    // large tables (migration 0004): the entry points plan with seqscan disabled.
    let db = TestDatabase::fresh().await.unwrap();
    let settings: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT proname::text, proconfig FROM pg_proc
         WHERE pronamespace = 'tenancy'::regnamespace AND proname IN ('apply_change', 'apply_changes')
         ORDER BY proname",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(settings.len(), 2, "{settings:?}");
    for (name, config) in settings {
        assert_eq!(
            config.as_deref(),
            Some(&["enable_seqscan=off".to_owned()][..]),
            "{name}"
        );
    }
}
