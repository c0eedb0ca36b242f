//! Every table of the registry (`Table::ALL`) is written by both write paths (bulk and
//! batches), read by `verify`, and reset by `rebuild`: a table added to the registry and
//! forgotten in one of them fails here.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use serde_json::json;
use tenancy_core::state::Table;
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::dump::all_rows;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{inst, org};
use tenancy_testkit::verify::assert_verified;

/// Events that leave rows in every table.
fn events(i: &str) -> Vec<tenancy_core::event::NewEvent> {
    vec![
        inst(i, "instance.added", json!({"name": "I"})),
        inst(
            i,
            "instance.domain.added",
            json!({"domain": format!("{i}.example"), "generated": false}),
        ),
        inst(
            i,
            "instance.trusted_domains.added",
            json!({"domain": "proxy.example"}),
        ),
        org(i, "o1", "org.added", json!({"name": "O"})),
        org(
            i,
            "o1",
            "org.domain.added",
            json!({"domain": format!("o.{i}.example")}),
        ),
        org(
            i,
            "o1",
            "org.domain.verified",
            json!({"domain": format!("o.{i}.example")}),
        ),
        org(
            i,
            "o1",
            "org.domain.primary.set",
            json!({"domain": format!("o.{i}.example")}),
        ),
    ]
}

async fn assert_every_table_has_rows(db: &TestDatabase, path: &str) {
    let rows = all_rows(&db.pool).await.unwrap();
    for table in Table::ALL {
        assert!(rows.len_of(table) > 0, "{path} wrote no row of {table}");
    }
}

#[tokio::test]
async fn every_table_is_written_by_both_paths_verified_and_rebuilt() {
    for (path, bulk_limit) in [("the bulk path", 100_000), ("the batches", 0)] {
        let db = TestDatabase::fresh().await.unwrap();
        PgEventStore::new(db.pool.clone())
            .push(events("i1"))
            .await
            .unwrap();
        let engine = Engine::new(
            db.pool.clone(),
            EngineConfig {
                bulk_limit,
                ..EngineConfig::default()
            },
        );
        engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
        assert_every_table_has_rows(&db, path).await;
        assert_verified(&engine).await;

        // rebuild resets every table (a row it did not reset would collide with, or be
        // doubled by, the replay) and replays.
        let outcome = engine.rebuild().await.unwrap();
        assert_eq!(outcome.failed, 0, "{outcome:?}");
        assert_every_table_has_rows(&db, "rebuild").await;
        assert_verified(&engine).await;

        // verify reads every table: empty them one by one (children first) and it must
        // miss the rows of each.
        for table in Table::ALL.iter().rev() {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", table.name())))
                .execute(&db.pool)
                .await
                .unwrap();
            let report = engine.verify().await.unwrap();
            let prefix = format!("- {} ", table.name());
            assert!(
                report
                    .differences
                    .iter()
                    .any(|line| line.starts_with(&prefix)),
                "verify did not miss the rows of {table}: {:?}",
                report.differences
            );
        }
    }
}

/// `verify` folds a part of the instances at a time; the custom domains that other
/// instances held are judged in a first pass over the whole store. With domains moving
/// between instances and an add that another instance's claim rejects, every part size
/// gives the report of one fold of everything, and a missing row is found whatever part
/// it is in.
#[tokio::test]
async fn verify_in_parts_equals_one_fold_of_the_whole_store() {
    use tenancy_testkit::stream::{Shape, churn_shaped};
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let shape = Shape {
        instances: 12,
        orgs: 2,
        moves: true,
    };
    for batch in churn_shaped(shape, 6, 7) {
        store.push(batch).await.unwrap();
    }
    // A legacy writer's race: `late` adds a domain `early` holds. The fold rejects it
    // only because of the other instance.
    store
        .push(vec![
            inst("early", "instance.added", json!({"name": "E"})),
            inst(
                "early",
                "instance.domain.added",
                json!({"domain": "shared.example"}),
            ),
        ])
        .await
        .unwrap();
    store
        .push(vec![
            inst("late", "instance.added", json!({"name": "L"})),
            inst(
                "late",
                "instance.domain.added",
                json!({"domain": "shared.example"}),
            ),
        ])
        .await
        .unwrap();
    let engine = Engine::new(db.pool.clone(), EngineConfig::default());
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();

    let whole = engine.verify_in_parts(usize::MAX).await.unwrap();
    assert!(whole.is_equal(), "{:?}", whole.differences);
    assert!(whole.failed_in_fold >= 1, "the rejected add: {whole:?}");
    for part in [1, 2, 5] {
        assert_eq!(
            engine.verify_in_parts(part).await.unwrap(),
            whole,
            "parts of {part}"
        );
    }

    sqlx::query("DELETE FROM instance_domains WHERE domain = 'shared.example'")
        .execute(&db.pool)
        .await
        .unwrap();
    let whole = engine.verify_in_parts(usize::MAX).await.unwrap();
    assert_eq!(whole.differences.len(), 1, "{:?}", whole.differences);
    assert!(
        whole.differences[0].starts_with("- instance_domains early "),
        "{whole:?}"
    );
    for part in [1, 3] {
        assert_eq!(
            engine.verify_in_parts(part).await.unwrap(),
            whole,
            "parts of {part}"
        );
    }
}
