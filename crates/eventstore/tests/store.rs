//! The event store and the v3 commands end to end against PostgreSQL.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::sync::Arc;

use serde_json::json;
use tenancy_core::Error;
use tenancy_core::command::{
    self, AddInstance, AddInstanceDomain, AddOrganization, AddOrganizationDomain,
    AddOrganizationDomainVerification, Command, RemoveOrganizationDomain,
    SetOrganizationDomainPrimary, VerifyOrganizationDomain,
};
use tenancy_core::event::{EventQuery, NewEvent, UniqueConstraint};
use tenancy_core::model::ValidationType;
use tenancy_core::ports::{EventReader, UnitOfWorkFactory};
use tenancy_core::query::{DomainCriteria, Pagination};
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::{InMemoryStore, fixtures};

fn event(instance: &str, aggregate: &str, event_type: &str, expected: Option<i64>) -> NewEvent {
    NewEvent {
        expected_sequence: expected,
        ..NewEvent::legacy(
            instance,
            "org",
            aggregate,
            event_type,
            json!({"name": "x"}),
            "test",
        )
    }
}

/// Pushes `events` from `tasks` tasks at once; each push must land.
async fn push_side_by_side(store: &PgEventStore, tasks: usize, events: Vec<NewEvent>) {
    let pushes: Vec<_> = (0..tasks)
        .map(|_| {
            let (store, events) = (store.clone(), events.clone());
            tokio::spawn(async move { store.push(events).await })
        })
        .collect();
    for push in pushes {
        push.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn sequences_expectations_and_concurrent_pushes() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let stored = store
        .push(vec![
            event("i", "o", "org.added", Some(0)),
            event("i", "o", "org.changed", None),
        ])
        .await
        .unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|e| (e.sequence, e.in_tx_order))
            .collect::<Vec<_>>(),
        [(1, 1), (2, 2)]
    );
    assert!(stored[0].position <= stored[1].position);
    let stale = store
        .push(vec![event("i", "o", "org.changed", Some(1))])
        .await;
    assert!(
        matches!(&stale, Err(Error::Conflict(why)) if why.contains("is at sequence 2, expected 1")),
        "{stale:?}"
    );
    // One unmet expectation in a batch writes none of it (nor the other aggregate's event).
    let mixed = store
        .push(vec![
            event("i", "p", "org.added", Some(0)),
            event("i", "o", "org.changed", Some(5)),
        ])
        .await;
    assert!(matches!(mixed, Err(Error::Conflict(_))), "{mixed:?}");
    assert!(
        store
            .read_aggregate("i", "org", "p")
            .await
            .unwrap()
            .is_empty()
    );

    // Without expectations, concurrent pushes all land with distinct consecutive sequences.
    push_side_by_side(&store, 8, vec![event("i", "o", "org.changed", None)]).await;
    let all = store.read_aggregate("i", "org", "o").await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );

    // With expectations, of two pushes expecting the same sequence one gets Conflict.
    let (s1, s2) = (store.clone(), store.clone());
    let (r1, r2) = tokio::join!(
        s1.push(vec![event("i", "o", "org.changed", Some(10))]),
        s2.push(vec![event("i", "o", "org.changed", Some(10))])
    );
    assert!(r1.is_ok() != r2.is_ok(), "{r1:?} {r2:?}");

    // Pushes of an event that creates one aggregate, side by side and without an
    // expectation: each lands, numbered after the others (the store assumes the aggregate
    // is new and looks its sequence up when the key says it is not).
    push_side_by_side(
        &store,
        6,
        vec![
            event("i", "created", "org.added", None),
            event("i", "created", "org.changed", None),
        ],
    )
    .await;
    let created = store.read_aggregate("i", "org", "created").await.unwrap();
    assert_eq!(
        created.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );

    // Two pushes that both declare one aggregate new: the primary key lets exactly one in.
    for round in 0..5 {
        let aggregate = format!("new-{round}");
        let (s1, s2) = (store.clone(), store.clone());
        let (r1, r2) = tokio::join!(
            s1.push(vec![event("i", &aggregate, "org.added", Some(0))]),
            s2.push(vec![event("i", &aggregate, "org.added", Some(0))])
        );
        assert!(r1.is_ok() != r2.is_ok(), "{r1:?} {r2:?}");
        let refused = if r1.is_ok() { r2 } else { r1 };
        assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
        let stored = store.read_aggregate("i", "org", &aggregate).await.unwrap();
        assert_eq!(stored.len(), 1);
    }
}

#[tokio::test]
async fn unique_constraint_violations_write_nothing() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let mut first = event("i1", "i1", "instance.domain.added", None);
    first
        .unique_constraints
        .push(UniqueConstraint::add_instance_domain("Shared.example"));
    store.push(vec![first.clone()]).await.unwrap();
    let mut second = event("i2", "i2", "instance.domain.added", None);
    second
        .unique_constraints
        .push(UniqueConstraint::add_instance_domain("shared.EXAMPLE"));
    let taken = store
        .push(vec![event("i2", "i2", "instance.added", None), second])
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
    assert!(
        store
            .read_aggregate("i2", "org", "i2")
            .await
            .unwrap()
            .is_empty(),
        "the whole push was rolled back"
    );
}

#[tokio::test]
async fn gap_safe_read_waits_for_a_push_that_commits_late() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    // Push A takes its position first and commits last.
    let mut tx_a = db.pool.begin().await.unwrap();
    tenancy_eventstore::push_on(&mut tx_a, vec![event("i", "a", "org.added", None)])
        .await
        .unwrap();
    store
        .push(vec![event("i", "b", "org.added", None)])
        .await
        .unwrap();
    let reader = store.clone();
    let read = tokio::spawn(async move {
        reader
            .read(&EventQuery {
                instance_id: "i".into(),
                ..EventQuery::default()
            })
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !read.is_finished(),
        "the reader waits for the in-flight push"
    );
    tx_a.commit().await.unwrap();
    let events = read.await.unwrap().unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"],
        "A before B, nothing skipped"
    );
    let after = store
        .read(&EventQuery {
            instance_id: "i".into(),
            after: Some(events[0].sort_key()),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
}

/// One scenario of commands, run against any store.
async fn scenario(store: &dyn UnitOfWorkFactory) -> Result<String, Error> {
    let ctx = fixtures::context();
    let instance = command::run(
        store,
        &ctx,
        &AddInstance {
            name: "ACME".into(),
        },
    )
    .await?;
    command::run(
        store,
        &ctx,
        &AddInstanceDomain {
            instance_id: instance.clone(),
            domain: "Login.ACME.example".into(),
            generated: true,
        },
    )
    .await?;
    let org = command::run(
        store,
        &ctx,
        &AddOrganization {
            id: None,
            instance_id: instance.clone(),
            name: "Sales".into(),
        },
    )
    .await?;
    let org2 = command::run(
        store,
        &ctx,
        &AddOrganization {
            id: None,
            instance_id: instance.clone(),
            name: "Ops".into(),
        },
    )
    .await?;
    for o in [&org, &org2] {
        command::run(
            store,
            &ctx,
            &AddOrganizationDomain {
                instance_id: instance.clone(),
                org_id: o.clone(),
                domain: "sales.example".into(),
            },
        )
        .await?;
    }
    command::run(
        store,
        &ctx,
        &AddOrganizationDomainVerification {
            instance_id: instance.clone(),
            org_id: org.clone(),
            domain: "sales.example".into(),
            validation_type: ValidationType::Dns,
        },
    )
    .await?;
    command::run(
        store,
        &ctx,
        &VerifyOrganizationDomain {
            instance_id: instance.clone(),
            org_id: org.clone(),
            domain: "sales.example".into(),
        },
    )
    .await?;
    command::run(
        store,
        &ctx,
        &SetOrganizationDomainPrimary {
            instance_id: instance.clone(),
            org_id: org.clone(),
            domain: "sales.example".into(),
        },
    )
    .await?;
    // Rules: these fail and must write nothing.
    let dup = command::run(
        store,
        &ctx,
        &AddOrganization {
            id: None,
            instance_id: instance.clone(),
            name: "SALES".into(),
        },
    )
    .await;
    assert!(matches!(dup, Err(Error::AlreadyExists { .. })), "{dup:?}");
    let verify2 = command::run(
        store,
        &ctx,
        &VerifyOrganizationDomain {
            instance_id: instance.clone(),
            org_id: org2.clone(),
            domain: "sales.example".into(),
        },
    )
    .await;
    assert!(
        matches!(verify2, Err(Error::AlreadyExists { .. })),
        "{verify2:?}"
    );
    let primary = command::run(
        store,
        &ctx,
        &RemoveOrganizationDomain {
            instance_id: instance.clone(),
            org_id: org.clone(),
            domain: "sales.example".into(),
        },
    )
    .await;
    assert!(
        matches!(primary, Err(Error::PreconditionFailed(_))),
        "{primary:?}"
    );
    let other = command::run(
        store,
        &ctx,
        &AddInstance {
            name: "Other".into(),
        },
    )
    .await?;
    let taken = command::run(
        store,
        &ctx,
        &AddInstanceDomain {
            instance_id: other,
            domain: "login.acme.example".into(),
            generated: false,
        },
    )
    .await;
    assert!(
        matches!(taken, Err(Error::AlreadyExists { .. })),
        "{taken:?}"
    );
    // Summarize what is visible, the same way for both stores.
    let mut uow = store.begin().await?;
    let host = uow.instance_by_host("LOGIN.acme.example").await?;
    let domains = uow
        .list_domains(
            &DomainCriteria::of_instance(&instance),
            &Pagination::default(),
        )
        .await?;
    uow.rollback().await?;
    let rows: Vec<String> = domains
        .iter()
        .map(|d| {
            format!(
                "{:?}:{}:{}:{}:{:?}",
                d.org_id.as_ref().map(|o| o.to_string()),
                d.domain,
                d.is_verified,
                d.is_primary,
                d.validation_type
            )
        })
        .collect();
    Ok(format!("{} {}", host.name, rows.join(",")))
}

#[tokio::test]
async fn commands_write_state_and_events_together_and_match_the_in_memory_adapters() {
    let db = TestDatabase::fresh().await.unwrap();
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let pg = PgStore::with_events(db.pool.clone(), events.clone());
    let in_memory = InMemoryStore::new();
    let on_pg = scenario(&pg).await.unwrap();
    let in_mem = scenario(&in_memory).await.unwrap();
    assert_eq!(
        on_pg, in_mem,
        "the in-memory adapters behave like PostgreSQL"
    );

    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM eventstore.events2 WHERE written_by_v3")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        count as usize,
        in_memory.events().len(),
        "one event per successful command step, none for failures"
    );
    assert_eq!(count, 10);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM domains")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);
    let uniques: i64 = sqlx::query_scalar("SELECT count(*) FROM eventstore.unique_constraints")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        uniques, 4,
        "instance domain, two org names, one verified org domain"
    );
    // Rows and events carry one timestamp.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM organizations o JOIN eventstore.events2 e
         ON e.aggregate_id = o.id AND e.event_type = 'org.added' WHERE e.created_at <> o.created_at",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);
}

#[tokio::test]
async fn a_failing_command_writes_nothing() {
    let db = TestDatabase::fresh().await.unwrap();
    let pg = PgStore::with_events(
        db.pool.clone(),
        Arc::new(PgEventStore::new(db.pool.clone())),
    );
    let ctx = fixtures::context();
    let instance = command::run(
        &pg,
        &ctx,
        &AddInstance {
            name: "ACME".into(),
        },
    )
    .await
    .unwrap();
    // The state write succeeds, then the unique constraint push fails: all rolled back.
    sqlx::query(
        "INSERT INTO eventstore.unique_constraints VALUES ('', 'instance_domain', 'late.example')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let cmd = AddInstanceDomain {
        instance_id: instance.clone(),
        domain: "late.example".into(),
        generated: false,
    };
    let mut uow = pg.begin().await.unwrap();
    let failed = cmd.execute(&mut *uow, &ctx).await;
    assert!(
        matches!(failed, Err(Error::AlreadyExists { .. })),
        "{failed:?}"
    );
    drop(uow);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM instance_domains")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let via_run = command::run(&pg, &ctx, &cmd).await;
    assert!(via_run.is_err());
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM eventstore.events2")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(events, 1, "only instance.added");
}

/// The event store's behaviour, run against PostgreSQL and the in-memory store alike.
#[async_trait::async_trait]
trait Harness: Send + Sync {
    async fn push(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<Vec<tenancy_core::event::StoredEvent>, Error>;
    fn reader(&self) -> Box<dyn EventReader>;
}

#[async_trait::async_trait]
impl Harness for PgEventStore {
    async fn push(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<Vec<tenancy_core::event::StoredEvent>, Error> {
        PgEventStore::push(self, events).await
    }
    fn reader(&self) -> Box<dyn EventReader> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Harness for InMemoryStore {
    async fn push(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<Vec<tenancy_core::event::StoredEvent>, Error> {
        let mut uow = self.begin().await?;
        let stored = uow.push(events).await?;
        uow.commit().await?;
        Ok(stored)
    }
    fn reader(&self) -> Box<dyn EventReader> {
        Box::new(self.event_reader())
    }
}

async fn event_store_suite(store: &dyn Harness) {
    let pushed = store
        .push(vec![
            event("i", "o1", "org.added", Some(0)),
            event("i", "o2", "org.added", None),
            event("j", "o1", "org.added", None),
        ])
        .await
        .unwrap();
    assert_eq!(
        pushed.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    store
        .push(vec![event("i", "o1", "org.removed", Some(1))])
        .await
        .unwrap();
    assert!(matches!(
        store
            .push(vec![event("i", "o1", "org.removed", Some(1))])
            .await,
        Err(Error::Conflict(_))
    ));

    let mut unique = event("i", "o3", "org.added", None);
    unique
        .unique_constraints
        .push(UniqueConstraint::add_org_name("i", "Name"));
    store.push(vec![unique.clone()]).await.unwrap();
    let mut again = event("i", "o4", "org.added", None);
    again
        .unique_constraints
        .push(UniqueConstraint::add_org_name("i", "NAME"));
    assert!(matches!(
        store
            .push(vec![event("i", "o5", "org.added", None), again])
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    let mut elsewhere = event("j", "o4", "org.added", None);
    elsewhere
        .unique_constraints
        .push(UniqueConstraint::add_org_name("j", "name"));
    store.push(vec![elsewhere]).await.unwrap();

    // Aggregates the writer declares new (expected sequence 0) are numbered from 1, an
    // expectation later in the same push included; beside them an aggregate without one
    // appends. A push that declares an aggregate new that has events writes nothing.
    let sequences = |pushed: Vec<tenancy_core::event::StoredEvent>| {
        pushed.iter().map(|e| e.sequence).collect::<Vec<_>>()
    };
    let fresh = store
        .push(vec![
            event("k", "n", "org.added", Some(0)),
            event("k", "a", "org.added", None),
            event("k", "n", "org.changed", None),
            event("k", "n", "org.changed", Some(2)),
        ])
        .await
        .unwrap();
    assert_eq!(sequences(fresh), [1, 1, 2, 3]);
    let existing = store
        .push(vec![
            event("k", "m", "org.added", Some(0)),
            event("k", "n", "org.added", Some(0)),
        ])
        .await;
    assert!(matches!(existing, Err(Error::Conflict(_))), "{existing:?}");
    let miscounted = store
        .push(vec![
            event("k", "m", "org.added", Some(0)),
            event("k", "m", "org.changed", Some(5)),
        ])
        .await;
    assert!(
        matches!(&miscounted, Err(Error::Conflict(why)) if why.contains("expected 5")),
        "{miscounted:?}"
    );
    let reader = store.reader();
    assert!(
        reader
            .read_aggregate("k", "org", "m")
            .await
            .unwrap()
            .is_empty()
    );
    let appended = store
        .push(vec![
            event("k", "m", "org.added", Some(0)),
            event("k", "a", "org.changed", None),
            event("k", "n", "org.changed", Some(3)),
        ])
        .await
        .unwrap();
    assert_eq!(sequences(appended), [1, 2, 4]);
    // An event that creates its aggregate is taken for its first; pushed for an aggregate
    // with events, it appends like any other.
    let created = store
        .push(vec![
            event("k", "z", "org.added", None),
            event("k", "n", "org.added", None),
            event("k", "z", "org.changed", None),
        ])
        .await
        .unwrap();
    assert_eq!(sequences(created), [1, 5, 2]);

    let all = reader
        .read(&EventQuery {
            instance_id: "i".into(),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = all
        .iter()
        .map(|e| (e.aggregate_id.as_str(), e.sequence))
        .collect();
    assert_eq!(
        ids,
        [("o1", 1), ("o2", 1), ("o1", 2), ("o3", 1)],
        "o5 and o4 were rolled back with their push"
    );
    let after = reader
        .read(&EventQuery {
            instance_id: "i".into(),
            after: Some(all[1].sort_key()),
            limit: Some(1),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].sort_key(), all[2].sort_key());
    let removed = reader
        .read(&EventQuery {
            instance_id: "i".into(),
            event_types: vec!["org.removed".into()],
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(removed.len(), 1);
    let o1 = reader
        .read(&EventQuery {
            instance_id: "i".into(),
            aggregate_ids: vec!["o1".into()],
            aggregate_types: vec!["org".into()],
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(o1.len(), 2);
    assert_eq!(
        reader.read_aggregate("i", "org", "o1").await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn the_in_memory_store_behaves_like_postgres() {
    let db = TestDatabase::fresh().await.unwrap();
    event_store_suite(&PgEventStore::new(db.pool.clone())).await;
    event_store_suite(&InMemoryStore::new()).await;
}

#[tokio::test]
async fn two_instances_racing_for_one_custom_domain_exactly_one_wins() {
    let db = TestDatabase::fresh().await.unwrap();
    let pg = PgStore::with_events(
        db.pool.clone(),
        Arc::new(PgEventStore::new(db.pool.clone())),
    );
    let ctx = fixtures::context();
    let a = command::run(&pg, &ctx, &AddInstance { name: "A".into() })
        .await
        .unwrap();
    let b = command::run(&pg, &ctx, &AddInstance { name: "B".into() })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for instance in [a, b] {
        let (pg, ctx) = (pg.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            command::run(
                &pg,
                &ctx,
                &AddInstanceDomain {
                    instance_id: instance,
                    domain: "contested.example".into(),
                    generated: false,
                },
            )
            .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(Error::AlreadyExists { .. }))),
        "{results:?}"
    );
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM domains WHERE domain = 'contested.example'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(rows, 1);
}

/// `read_each_after`, as the ordered catch-up walks a merge: every event of the wanted
/// types after each instance's cursor, once, in sort-key order, `limit` at a time — with
/// several events at one position (a ZITADEL push) on either side of a cursor — and
/// fewer than `limit` only when none are left up to the bound.
#[tokio::test]
async fn reading_each_instance_after_its_cursor_walks_every_event_once_in_order() {
    use rust_decimal::Decimal;
    use tenancy_core::event::{SortKey, StoredEvent};
    use tenancy_eventstore::import::import_rows;

    let db = TestDatabase::fresh().await.unwrap();
    let at = time::OffsetDateTime::UNIX_EPOCH;
    let mut rows = Vec::new();
    let mut sequence = 0;
    // Instance a: transactions of 1 to 4 events, some of a type the read leaves out;
    // instance b: a few, interleaved.
    for tx in 0..12i64 {
        for (instance, events) in [("a", 1 + tx % 4), ("b", i64::from(tx % 3 == 0))] {
            for n in 0..events {
                sequence += 1;
                // Two wanted (aggregate, event) types interleaved, so that the read
                // merges them in position order, and one left out. And a wanted pair
                // whose event is not named after its aggregate (no such event in
                // ZITADEL's catalogue, but the read takes both lists whole), among the
                // others and in the last transaction, after every other wanted event.
                let (aggregate_type, event_type) = match (tx + n) % 5 {
                    _ if tx == 11 || (tx == 5 && n == events - 1) => ("instance", "org.changed"),
                    4 => ("org", "org.member.added"),
                    1 | 3 => ("instance", "instance.changed"),
                    _ => ("org", "org.changed"),
                };
                rows.push(StoredEvent {
                    instance_id: instance.into(),
                    aggregate_type: aggregate_type.into(),
                    aggregate_id: format!("o{}", n % 2),
                    event_type: event_type.into(),
                    sequence,
                    revision: 1,
                    created_at: at,
                    payload: Some(serde_json::json!({"name": format!("n{sequence}")})),
                    creator: "u".into(),
                    owner: "o".into(),
                    position: Decimal::new(1_000 + tx * 10 + i64::from(instance == "b"), 0),
                    in_tx_order: i32::try_from(n + 1).unwrap(),
                    written_by_v3: false,
                });
            }
        }
    }
    import_rows(&db.pool, &rows).await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let types = (
        vec!["org".to_owned(), "instance".to_owned()],
        vec!["org.changed".to_owned(), "instance.changed".to_owned()],
    );
    for bound in [None, Some(Decimal::new(1_075, 0))] {
        let expected = |instance: &str| -> Vec<SortKey> {
            let mut keys: Vec<SortKey> = rows
                .iter()
                .filter(|e| e.instance_id == instance && e.event_type != "org.member.added")
                .filter(|e| bound.is_none_or(|b| e.position <= b))
                .map(StoredEvent::sort_key)
                .collect();
            keys.sort();
            keys
        };
        for limit in [1u32, 2, 3, 4, 7, 100] {
            let mut cursors: Vec<(String, Option<SortKey>)> =
                vec![("a".into(), None), ("b".into(), None)];
            let mut read: Vec<Vec<SortKey>> = vec![Vec::new(), Vec::new()];
            let mut open = vec![true, true];
            while open.iter().any(|o| *o) {
                let after: Vec<(String, Option<SortKey>)> = cursors
                    .iter()
                    .zip(&open)
                    .filter(|(_, o)| **o)
                    .map(|(c, _)| c.clone())
                    .collect();
                let events = store
                    .read_each_after(&after, &types.0, &types.1, bound, limit)
                    .await
                    .unwrap();
                for (n, (instance, cursor)) in cursors.iter_mut().enumerate() {
                    if !open[n] {
                        continue;
                    }
                    let mine: Vec<SortKey> = events
                        .iter()
                        .filter(|e| &e.instance_id == instance)
                        .map(StoredEvent::sort_key)
                        .collect();
                    assert!(
                        mine.len() <= limit as usize,
                        "{instance}: {} > {limit}",
                        mine.len()
                    );
                    assert!(
                        mine.windows(2).all(|w| w[0] < w[1]),
                        "{instance}: out of order"
                    );
                    if let Some(last) = mine.last() {
                        *cursor = Some(last.clone());
                    }
                    open[n] = mine.len() == limit as usize;
                    read[n].extend(mine);
                }
            }
            assert_eq!(read[0], expected("a"), "a, limit {limit}, bound {bound:?}");
            assert_eq!(read[1], expected("b"), "b, limit {limit}, bound {bound:?}");
        }
    }
}
