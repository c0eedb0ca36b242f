//! The repository contract: one suite of calls and expected answers (typed errors
//! included) that every adapter of the repository ports must pass. `tenancy-postgres`
//! runs it on PostgreSQL, this crate on [`crate::InMemoryStore`]; an adapter of another
//! team can run it too. Each contract starts from an empty store with instances `a` and
//! `b`, each with organizations `o1` ("Org One") and `o2` ("Org Two").
#![allow(clippy::unwrap_used, clippy::panic)] // a test suite: a failed unwrap is a failure

use crate::writes::RepositoryWrites as _;
use async_trait::async_trait;
use tenancy_core::Error;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{InstanceDomainKind, OrganizationState, ValidationType};
use tenancy_core::ports::Repositories;
use tenancy_core::query::{
    DomainCriteria, DomainOwner, DomainSort, InstanceCriteria, NameSort, OrganizationCriteria,
    Pagination, SortOrder, TextMatch,
};
use tenancy_core::state::{InstanceUpdate, OrganizationUpdate};
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

/// An adapter under test: hands out the repositories of a new, empty store.
#[async_trait]
pub trait Adapter: Send {
    /// Repositories over a new store with no rows.
    async fn fresh(&mut self) -> Box<dyn Repositories>;
}

/// Runs every contract, each on a fresh store.
pub async fn repository_contract(adapter: &mut dyn Adapter) {
    instance_lifecycle_soft_delete_and_revival(&mut *seeded(adapter).await).await;
    organization_names_are_unique_among_live_rows(&mut *seeded(adapter).await).await;
    custom_domains_are_global_trusted_per_instance(&mut *seeded(adapter).await).await;
    unified_domains_rules_and_text_matches(&mut *seeded(adapter).await).await;
    org_domain_rules_and_removal_cascade(&mut *seeded(adapter).await).await;
    counts_and_list_filters(&mut *seeded(adapter).await).await;
}

fn iid(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}
fn oid(s: &str) -> OrgId {
    OrgId::new(s).unwrap()
}

async fn seeded(adapter: &mut dyn Adapter) -> Box<dyn Repositories> {
    let mut s = adapter.fresh().await;
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
    s
}

async fn instance_lifecycle_soft_delete_and_revival(s: &mut dyn Repositories) {
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

async fn organization_names_are_unique_among_live_rows(s: &mut dyn Repositories) {
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

async fn custom_domains_are_global_trusted_per_instance(s: &mut dyn Repositories) {
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
    // A Host header as a login service receives it: port, case, trailing dot.
    for host in ["Login.Example:443", "login.example.", "LOGIN.EXAMPLE.:8080"] {
        assert_eq!(
            s.instance_by_host(host).await.unwrap().id,
            iid("a"),
            "{host}"
        );
    }
    assert!(matches!(
        s.instance_by_host("not a host").await,
        Err(Error::InvalidArgument { .. })
    ));
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

async fn unified_domains_rules_and_text_matches(s: &mut dyn Repositories) {
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

async fn org_domain_rules_and_removal_cascade(s: &mut dyn Repositories) {
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

async fn counts_and_list_filters(s: &mut dyn Repositories) {
    let (a, b) = (iid("a"), iid("b"));
    let custom = InstanceDomainKind::Custom {
        is_primary: true,
        is_generated: false,
    };
    s.insert_instance_domain(&a, "Login.A.example", custom, T0)
        .await
        .unwrap();
    s.insert_instance_domain(&b, "login.b.example", custom, T0)
        .await
        .unwrap();
    let by_domain = InstanceCriteria {
        custom_domains: vec!["LOGIN.a.EXAMPLE".into(), "nobody.example".into()],
        ..Default::default()
    };
    let found = s
        .list_instances(&by_domain, &Pagination::default())
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(s.count_instances(&by_domain).await.unwrap(), 1);
    let by_id = InstanceCriteria {
        ids: vec![b.clone(), iid("nope")],
        ..Default::default()
    };
    assert_eq!(s.count_instances(&by_id).await.unwrap(), 1);
    assert_eq!(
        s.count_instances(&InstanceCriteria::default())
            .await
            .unwrap(),
        2
    );
    s.remove_instance(&b, T0).await.unwrap();
    assert_eq!(s.count_instances(&by_id).await.unwrap(), 0);
    let with_deleted = InstanceCriteria {
        include_deleted: true,
        ..by_id
    };
    assert_eq!(s.count_instances(&with_deleted).await.unwrap(), 1);

    // Sorting by id alone, byte-wise.
    s.create_organization(&a, &oid("O3"), "Org Three", T0)
        .await
        .unwrap();
    let of_a = OrganizationCriteria {
        instance_id: Some(a.clone()),
        ..Default::default()
    };
    let by_id = Pagination::page(NameSort::Id, SortOrder::Ascending, 10, 0);
    let ids: Vec<String> = s
        .list_organizations(&of_a, &by_id)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id.as_str().to_owned())
        .collect();
    assert_eq!(ids, ["O3", "o1", "o2"]);
    assert_eq!(s.count_organizations(&of_a).await.unwrap(), 3);
    assert!(matches!(
        s.count_organizations(&OrganizationCriteria::default())
            .await,
        Err(Error::MissingTenant(_))
    ));

    // Organizations by id, and by a domain (verified or not) with a text match. A
    // domain goes to both tables, as the reducer writes it: the filter reads org_domains,
    // the primary domains below come from the unified domains.
    for (org, domain) in [("o1", "shop.o1.example"), ("o2", "Shop.O2.example")] {
        s.insert_org_domain(&a, &oid(org), domain, T0)
            .await
            .unwrap();
        s.add_organization_domain(&a, &oid(org), domain, None, T0)
            .await
            .unwrap();
    }
    s.set_organization_domain_verified(&a, &oid("o2"), "shop.o2.example", T0)
        .await
        .unwrap();
    s.set_organization_domain_primary(&a, &oid("o2"), "shop.o2.example", T0)
        .await
        .unwrap();
    let by_domain = OrganizationCriteria {
        domain: Some(TextMatch::starts_with("shop.").ignoring_case()),
        ..of_a.clone()
    };
    assert_eq!(s.count_organizations(&by_domain).await.unwrap(), 2);
    let exact = OrganizationCriteria {
        domain: Some(TextMatch::equals("shop.o1.example")),
        ..of_a.clone()
    };
    let found = s
        .list_organizations(&exact, &Pagination::default())
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["o1"]
    );
    let ids = OrganizationCriteria {
        ids: vec![oid("o2"), oid("O3")],
        ..of_a.clone()
    };
    assert_eq!(s.count_organizations(&ids).await.unwrap(), 2);

    // The primary domains of a page of organizations, in one call.
    let primaries = DomainCriteria::of_instance(&a)
        .owner(DomainOwner::Organizations(vec![
            oid("o1"),
            oid("o2"),
            oid("O3"),
        ]))
        .primary(true);
    let rows = s
        .list_domains(&primaries, &Pagination::default())
        .await
        .unwrap();
    assert_eq!(
        rows.iter()
            .map(|d| (d.org_id.as_ref().map(OrgId::as_str), d.domain.as_str()))
            .collect::<Vec<_>>(),
        [(Some("o2"), "Shop.O2.example")]
    );
}
