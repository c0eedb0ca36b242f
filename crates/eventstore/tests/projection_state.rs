//! The projection's bookkeeping against PostgreSQL: what the ordering rules read.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::time::Duration;

use serde_json::json;
use tenancy_core::event::NewEvent;
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::projection_state::ProjectionState;
use tenancy_testkit::db::TestDatabase;

fn state() -> ProjectionState {
    ProjectionState::new(
        "relational_tables",
        vec!["instance".into()],
        vec!["instance.added".into(), "instance.domain.added".into()],
    )
}

fn event(instance: &str, event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent::legacy(instance, "instance", instance, event_type, payload, "test")
}

/// A bulk catch-up whose insert met a custom domain waits while the holder may still
/// release it, and also when the holder has released it since (the insert failed, the
/// check finds nobody): only a holder that has projected everything up to the position
/// makes it fall back.
#[tokio::test]
async fn a_bulk_insert_waits_for_a_holder_behind_or_gone() {
    let db = TestDatabase::fresh().await.unwrap();
    let events = PgEventStore::new(db.pool.clone());
    let pushed = events
        .push(vec![
            event("h", "instance.added", json!({"name": "H"})),
            event("h", "instance.domain.added", json!({"domain": "x.example"})),
        ])
        .await
        .unwrap();
    let last = pushed.last().unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let domains = vec!["x.example".to_owned()];
    let state = state();

    // Nobody holds it (released meanwhile): wait and try again.
    assert!(
        state
            .holder_is_behind(&mut conn, "fresh", &domains, last.position)
            .await
            .unwrap()
    );
    // The holder has not projected its events: it may release the domain.
    sqlx::raw_sql(
        "INSERT INTO instances (id, name) VALUES ('h', 'H');
         INSERT INTO instance_domains (instance_id, domain, type, is_primary, is_generated)
         VALUES ('h', 'x.example', 'custom', false, false)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    assert!(
        state
            .holder_is_behind(&mut conn, "fresh", &domains, last.position)
            .await
            .unwrap()
    );
    // The holder has projected everything up to the position: it holds the domain there.
    state.set_cursor(&mut conn, last).await.unwrap();
    assert!(
        !state
            .holder_is_behind(&mut conn, "fresh", &domains, last.position)
            .await
            .unwrap()
    );
}

/// `behind_among` lists the instances of a set with an event of the projection past their
/// cursor: without a cursor, behind its newest event, not past one of another type.
#[tokio::test]
async fn behind_among_lists_only_instances_with_events_past_their_cursor() {
    let db = TestDatabase::fresh().await.unwrap();
    let events = PgEventStore::new(db.pool.clone());
    let state = state();
    let mut pushed = Vec::new();
    for instance in ["caught-up", "behind", "no-cursor"] {
        pushed.push(
            events
                .push(vec![
                    event(instance, "instance.added", json!({"name": instance})),
                    event(
                        instance,
                        "instance.domain.added",
                        json!({"domain": format!("{instance}.example")}),
                    ),
                ])
                .await
                .unwrap(),
        );
    }
    // An event of a type the projection does not read: never behind because of it.
    events
        .push(vec![event(
            "caught-up",
            "instance.iam.project.set",
            json!({}),
        )])
        .await
        .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    state
        .set_cursor(&mut conn, pushed[0].last().unwrap())
        .await
        .unwrap();
    state.set_cursor(&mut conn, &pushed[1][0]).await.unwrap();
    let ids = ["caught-up", "behind", "no-cursor", "unknown"].map(String::from);
    let mut behind = state.behind_among(&db.pool, &ids).await.unwrap();
    behind.sort();
    let names: Vec<&str> = behind.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(names, ["behind", "no-cursor"]);
    assert!(
        behind.iter().all(|(_, age)| *age < Duration::from_secs(60)),
        "pushed just now: {behind:?}"
    );
    state
        .set_cursor(&mut conn, pushed[1].last().unwrap())
        .await
        .unwrap();
    let behind = state.behind_among(&db.pool, &ids).await.unwrap();
    assert_eq!(behind.len(), 1);
    assert_eq!(behind[0].0, "no-cursor");
}

/// `behind_among` gives each instance the age of its oldest event past the cursor (by its
/// position): an event stamped 30 s ago is 30 s old, however young the others are.
#[tokio::test]
async fn behind_among_gives_the_age_of_the_oldest_event_past_the_cursor() {
    let db = TestDatabase::fresh().await.unwrap();
    sqlx::query(
        "INSERT INTO eventstore.events2 (instance_id, aggregate_type, aggregate_id, event_type, \"sequence\",
             revision, created_at, payload, creator, \"owner\", \"position\", in_tx_order)
         VALUES ('old', 'instance', 'old', 'instance.added', 1, 1, now(), '{\"name\": \"Old\"}',
                 'writer', 'old', EXTRACT(EPOCH FROM clock_timestamp()) - 30, 0)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    PgEventStore::new(db.pool.clone())
        .push(vec![event(
            "old",
            "instance.domain.added",
            json!({"domain": "old.example"}),
        )])
        .await
        .unwrap();
    let behind = state()
        .behind_among(&db.pool, &["old".to_owned()])
        .await
        .unwrap();
    assert_eq!(behind.len(), 1);
    let age = behind[0].1;
    assert!(
        age >= Duration::from_secs(30) && age < Duration::from_secs(90),
        "{age:?}"
    );
}
