//! Keyset paging (`Pagination::after`) walks a list in the same order as offset paging,
//! on PostgreSQL and in memory alike, for every sort and order; a position of another
//! sort is refused.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use tenancy_core::Error;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::Organization;
use tenancy_core::ports::{DomainRepository, InstanceRepository, OrganizationRepository};
use tenancy_core::query::{
    DomainCriteria, DomainSort, InstanceCriteria, KeyValue, Keyset, NameSort, OrganizationCriteria,
    Pagination, SortOrder,
};
use tenancy_postgres::PgStore;
use tenancy_testkit::InMemoryStore;
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::writes::RepositoryWrites as _;
use time::OffsetDateTime;

const T0: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00:00 UTC);

/// Names whose byte order differs from a case-insensitive or a locale order, and times
/// that tie, so that the id has to break ties.
const NAMES: [&str; 9] = ["b", "Bravo", "a", "Ä", "a_b", "a%b", "zeta", "Zulu", "10"];

async fn fill<R: tenancy_core::ports::Repositories + ?Sized>(repos: &mut R) {
    let instance = InstanceId::new("i1").unwrap();
    repos.create_instance(&instance, "I", T0).await.unwrap();
    repos
        .create_instance(&InstanceId::new("i0").unwrap(), "other", T0)
        .await
        .unwrap();
    for (n, name) in NAMES.iter().enumerate() {
        let id = OrgId::new(format!("o{}", n % 4 * 10 + n)).unwrap();
        let at = T0 + time::Duration::seconds((n % 3) as i64);
        repos
            .create_organization(&instance, &id, name, at)
            .await
            .unwrap();
        repos
            .add_organization_domain(
                &instance,
                &id,
                &format!("{name}.example").replace(['%', 'Ä'], "x"),
                None,
                at,
            )
            .await
            .unwrap();
    }
}

async fn walk_orgs<R: OrganizationRepository + ?Sized>(
    repos: &mut R,
    sort: NameSort,
    order: SortOrder,
) -> (Vec<String>, Vec<String>) {
    let criteria = OrganizationCriteria {
        instance_id: Some(InstanceId::new("i1").unwrap()),
        ..OrganizationCriteria::default()
    };
    let mut by_offset = Vec::new();
    for offset in (0..).step_by(3) {
        let page = repos
            .list_organizations(&criteria, &Pagination::page(sort, order, 3, offset))
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        by_offset.extend(page.into_iter().map(|o| o.id.as_str().to_owned()));
    }
    let mut by_keyset = Vec::new();
    let mut after: Option<Keyset> = None;
    loop {
        let page: Vec<Organization> = repos
            .list_organizations(&criteria, &Pagination::after(sort, order, 3, after.clone()))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(Keyset::of_named(
            sort,
            &last.name,
            last.created_at,
            last.updated_at,
            last.id.as_str(),
        ));
        by_keyset.extend(page.iter().map(|o| o.id.as_str().to_owned()));
    }
    (by_offset, by_keyset)
}

async fn walk_domains<R: DomainRepository + ?Sized>(
    repos: &mut R,
    sort: DomainSort,
    order: SortOrder,
) -> (Vec<String>, Vec<String>) {
    let criteria = DomainCriteria::of_instance(&InstanceId::new("i1").unwrap());
    let all = repos
        .list_domains(&criteria, &Pagination::page(sort, order, 100, 0))
        .await
        .unwrap();
    let mut by_keyset = Vec::new();
    let mut after = None;
    loop {
        let page = repos
            .list_domains(&criteria, &Pagination::after(sort, order, 2, after.clone()))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(Keyset::of_domain(sort, last));
        by_keyset.extend(page.iter().map(|d| d.domain.clone()));
    }
    (all.into_iter().map(|d| d.domain).collect(), by_keyset)
}

#[tokio::test]
async fn keyset_pages_equal_offset_pages_on_both_adapters() {
    let db = TestDatabase::fresh().await.unwrap();
    let pg = PgStore::new(db.pool.clone());
    let mut pg = pg.session().await.unwrap();
    let memory = InMemoryStore::new();
    let mut mem = memory.unit_of_work();
    fill(&mut pg).await;
    fill(&mut mem).await;
    for sort in [NameSort::Name, NameSort::CreatedAt, NameSort::UpdatedAt] {
        for order in [SortOrder::Ascending, SortOrder::Descending] {
            let (pg_offset, pg_keyset) = walk_orgs(&mut pg, sort, order).await;
            let (mem_offset, mem_keyset) = walk_orgs(&mut mem, sort, order).await;
            assert_eq!(pg_offset.len(), NAMES.len());
            assert_eq!(pg_keyset, pg_offset, "{sort:?} {order:?}");
            assert_eq!(mem_keyset, mem_offset, "{sort:?} {order:?}");
            assert_eq!(
                pg_offset, mem_offset,
                "{sort:?} {order:?}: the adapters agree"
            );
        }
    }
    for sort in [
        DomainSort::Domain,
        DomainSort::CreatedAt,
        DomainSort::UpdatedAt,
    ] {
        for order in [SortOrder::Ascending, SortOrder::Descending] {
            let (pg_all, pg_keyset) = walk_domains(&mut pg, sort, order).await;
            let (mem_all, mem_keyset) = walk_domains(&mut mem, sort, order).await;
            assert_eq!(pg_all.len(), NAMES.len());
            assert_eq!(pg_keyset, pg_all, "{sort:?} {order:?}");
            assert_eq!(mem_keyset, mem_all, "{sort:?} {order:?}");
            assert_eq!(pg_all, mem_all, "{sort:?} {order:?}");
        }
    }
    // Instances: system-wide lists.
    let page = Pagination::after(
        NameSort::Name,
        SortOrder::Ascending,
        10,
        Some(Keyset {
            value: KeyValue::Text("I".into()),
            id: KeyValue::Text("i1".into()),
        }),
    );
    let rest = pg
        .list_instances(&InstanceCriteria::default(), &page)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["i0"]
    );
    assert_eq!(
        mem.list_instances(&InstanceCriteria::default(), &page)
            .await
            .unwrap(),
        rest
    );
}

#[tokio::test]
async fn a_position_of_another_sort_is_refused() {
    let db = TestDatabase::fresh().await.unwrap();
    let pg = PgStore::new(db.pool.clone());
    let mut pg = pg.session().await.unwrap();
    let memory = InMemoryStore::new();
    let mut mem = memory.unit_of_work();
    fill(&mut pg).await;
    fill(&mut mem).await;
    let criteria = OrganizationCriteria {
        instance_id: Some(InstanceId::new("i1").unwrap()),
        ..OrganizationCriteria::default()
    };
    let wrong = Pagination::after(
        NameSort::CreatedAt,
        SortOrder::Ascending,
        3,
        Some(Keyset {
            value: KeyValue::Text("a".into()),
            id: KeyValue::Text("o1".into()),
        }),
    );
    for result in [
        pg.list_organizations(&criteria, &wrong).await,
        mem.list_organizations(&criteria, &wrong).await,
    ] {
        assert!(
            matches!(
                result,
                Err(Error::InvalidArgument {
                    field: "page_token",
                    ..
                })
            ),
            "{result:?}"
        );
    }
}
