//! The projection's bookkeeping against PostgreSQL: what the ordering rules read.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

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
    assert_eq!(behind, ["behind", "no-cursor"]);
    state
        .set_cursor(&mut conn, pushed[1].last().unwrap())
        .await
        .unwrap();
    assert_eq!(
        state.behind_among(&db.pool, &ids).await.unwrap(),
        ["no-cursor"]
    );
}
