//! Repository behaviour against a real PostgreSQL (a fresh database per test): the
//! repository contract every adapter passes (`tenancy_testkit::contract`), then what
//! only a database shows (concurrency, migrations, plans).
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};

use tenancy_core::Error;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::InstanceDomainKind;
use tenancy_core::ports::{InstanceDomainRepository, Repositories, UnitOfWork};
use tenancy_core::state::Table;
use tenancy_postgres::{PgSession, PgStore};
use tenancy_testkit::contract::{Adapter, repository_contract};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::writes::RepositoryWrites as _;
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

fn iid(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}
fn oid(s: &str) -> OrgId {
    OrgId::new(s).unwrap()
}

/// Fresh databases, kept until the test ends.
#[derive(Default)]
struct Postgres(Vec<TestDatabase>);

#[async_trait::async_trait]
impl Adapter for Postgres {
    async fn fresh(&mut self) -> Box<dyn Repositories> {
        let db = TestDatabase::fresh().await.expect("test database");
        let session = PgStore::new(db.pool.clone()).session().await.unwrap();
        self.0.push(db);
        Box::new(session)
    }
}

#[tokio::test]
async fn the_repository_contract() {
    repository_contract(&mut Postgres::default()).await;
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

/// `updated_at` is stamped with the transaction's time only where a statement leaves it
/// NULL (schema.md); an explicit value, the projection's event time, is kept. The trigger
/// of every table says so in its condition (migration 0013), so a row that gives the
/// column calls no function.
#[tokio::test]
async fn updated_at_is_stamped_only_where_a_statement_leaves_it_null() {
    let db = TestDatabase::fresh().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let now: OffsetDateTime = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let stamped = |sql: &'static str| sqlx::query_scalar::<_, OffsetDateTime>(sql);
    let given = stamped(
        "INSERT INTO instances (id, name, updated_at) VALUES ('i1', 'one', $1) RETURNING updated_at",
    )
    .bind(T0)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(given, T0, "an explicit time is kept on insert");
    let left_null = stamped(
        "INSERT INTO instances (id, name, updated_at) VALUES ('i2', 'two', NULL) RETURNING updated_at",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(left_null, now, "a NULL is stamped on insert");
    let renamed = stamped("UPDATE instances SET name = 'uno' WHERE id = 'i1' RETURNING updated_at")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(renamed, T0, "an update that names no time keeps the row's");
    let set_null =
        stamped("UPDATE instances SET updated_at = NULL WHERE id = 'i1' RETURNING updated_at")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(set_null, now, "a NULL is stamped on update");
    tx.rollback().await.unwrap();
    for table in Table::ALL {
        let definition: String = sqlx::query_scalar(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
             WHERE t.tgrelid = to_regclass($1) AND t.tgname = $2",
        )
        .bind(table.name())
        .bind(format!("{}_updated_at", table.name()))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(
            definition.contains("BEFORE INSERT OR UPDATE")
                && definition.contains("WHEN ((new.updated_at IS NULL))"),
            "{definition}"
        );
    }
}

#[tokio::test]
async fn state_change_entry_points_plan_with_seqscan_disabled() {
    // Plans cached while the tables were empty must not turn into sequential scans of
    // large tables (migrations 0004, 0008): the functions plan with seqscan disabled.
    let db = TestDatabase::fresh().await.unwrap();
    let mut expected: Vec<String> = Table::ALL
        .iter()
        .map(|t| format!("apply_{}", t.name()))
        .chain(["apply_changes".to_owned()])
        .collect();
    expected.sort();
    let settings: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT proname::text, proconfig FROM pg_proc
         WHERE pronamespace = 'tenancy'::regnamespace AND proname LIKE 'apply\\_%'
         ORDER BY proname",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let names: Vec<String> = settings.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        names, expected,
        "one function per table of the registry, and the batch"
    );
    for (name, config) in settings {
        assert_eq!(
            config.as_deref(),
            Some(&["enable_seqscan=off".to_owned()][..]),
            "{name}"
        );
    }
}

/// Every kind of change reaches its table's function (`tenancy.apply_<table>`, which
/// dispatches on the change's name) and applies there, one by one and through the batch
/// entry point; and each table's function knows no name its change type lacks.
#[tokio::test]
async fn every_kind_of_change_reaches_the_schema_and_the_schema_knows_no_other() {
    let db = TestDatabase::fresh().await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let mut names: BTreeMap<Table, BTreeSet<String>> = BTreeMap::new();
    for change in tenancy_testkit::changes::one_of_each() {
        let encoded = serde_json::to_value(&change).unwrap();
        let name = encoded.as_object().unwrap().keys().next().unwrap().clone();
        tenancy_postgres::apply::apply_change(&mut conn, &change, T0)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        names.entry(change.table()).or_default().insert(name);
    }
    assert_eq!(
        names.values().map(BTreeSet::len).sum::<usize>(),
        tenancy_testkit::changes::KINDS
    );
    // The same changes through the batch entry point, on a fresh database.
    let again = TestDatabase::fresh().await.unwrap();
    let changes: Vec<_> = tenancy_testkit::changes::one_of_each()
        .into_iter()
        .map(|c| (c, T0))
        .collect();
    let mut conn = again.pool.acquire().await.unwrap();
    tenancy_postgres::apply::apply_changes(&mut conn, &changes)
        .await
        .unwrap();
    assert_eq!(
        tenancy_postgres::dump::all_rows(&again.pool).await.unwrap(),
        tenancy_postgres::dump::all_rows(&db.pool).await.unwrap()
    );
    for table in Table::ALL {
        let definition: String =
            sqlx::query_scalar("SELECT pg_get_functiondef(to_regprocedure($1))")
                .bind(format!(
                    "tenancy.apply_{}(text, jsonb, timestamptz)",
                    table.name()
                ))
                .fetch_one(&db.pool)
                .await
                .unwrap();
        // The branches: WHEN 'Name'[, 'Name'] THEN (the value CASEs inside use lower case).
        let mut known = BTreeSet::new();
        for line in definition.lines() {
            let line = line.trim();
            if let Some(list) = line
                .strip_prefix("WHEN ")
                .and_then(|l| l.strip_suffix(" THEN"))
            {
                for name in list.split(',') {
                    let name = name.trim().trim_matches('\'');
                    if name.starts_with(char::is_uppercase) {
                        known.insert(name.to_owned());
                    }
                }
            }
        }
        assert_eq!(
            Some(&known),
            names.get(&table),
            "apply_{table}'s branches and the table's change type differ"
        );
    }
}
