//! Import of exports, against PostgreSQL.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::fmt::Write as _;

use tenancy_core::event::EventQuery;
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::import::{ImportError, import_file};
use tenancy_testkit::db::TestDatabase;

const HEADER: &str = "instance_id,aggregate_type,aggregate_id,event_type,sequence,revision,created_at,payload,creator,owner,position,in_tx_order,written_by_v3";

fn file(name: &str, content: &str) -> tempfile_path::TempPath {
    tempfile_path::write(name, content)
}

/// A tiny temp-file helper (std only).
mod tempfile_path {
    use std::path::PathBuf;
    pub struct TempPath(pub PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    pub fn write(name: &str, content: &str) -> TempPath {
        let path =
            std::env::temp_dir().join(format!("tenancy-import-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        TempPath(path)
    }
}

#[tokio::test]
async fn imports_100k_events_once_and_streams_them_back() {
    let db = TestDatabase::fresh().await.unwrap();
    let mut csv = String::from(HEADER);
    csv.push('\n');
    for n in 0..100_000u64 {
        let (instance, org) = (n % 10, n % 1000);
        let seq = n / 1000 + 1;
        writeln!(
            csv,
            "i{instance},org,o{org},org.changed,{seq},1,2024-05-01 10:00:00.{:06}+00,\"{{\"\"name\"\":\"\"n{n}\"\"}}\",u,o{org},{}.{:06},1,f",
            n % 1_000_000,
            1_714_557_600 + n / 1000,
            n % 1_000_000
        )
        .unwrap();
    }
    let path = file("big.csv", &csv);
    let report = import_file(&db.pool, &path.0).await.unwrap();
    assert_eq!(
        (report.rows, report.inserted, report.already_present),
        (100_000, 100_000, 0)
    );
    let again = import_file(&db.pool, &path.0).await.unwrap();
    assert_eq!(
        (again.inserted, again.already_present),
        (0, 100_000),
        "re-import adds nothing"
    );

    let store = PgEventStore::new(db.pool.clone());
    let mut batches = 0;
    let mut last = None;
    let seen = store
        .read_in_batches(
            &EventQuery {
                instance_id: "i3".into(),
                ..EventQuery::default()
            },
            1_000,
            |events| {
                batches += 1;
                for e in &events {
                    let key = e.sort_key();
                    assert!(
                        last.as_ref().is_none_or(|l| *l < key),
                        "ascending sort-key order"
                    );
                    last = Some(key);
                }
                Ok(())
            },
        )
        .await
        .unwrap();
    assert_eq!(seen, 10_000);
    assert_eq!(batches, 10);
}

#[tokio::test]
async fn malformed_files_are_rejected_whole_with_the_line() {
    let db = TestDatabase::fresh().await.unwrap();
    let good = "i,org,o,org.added,1,1,2024-05-01 10:00:00+00,\"{\"\"name\"\":\"\"x\"\"}\",u,o,1714557600,1,f";
    let cases = [
        ("bad-json.csv", format!("{HEADER}\n{good}\ni,org,o,org.changed,2,1,2024-05-01 10:00:00+00,{{oops,u,o,1714557601,1,f\n"), "line 3", "payload"),
        ("missing-column.csv", format!("{HEADER}\n{good}\ni,org,o,org.changed,2,1,2024-05-01 10:00:00+00\n"), "line 3", "missing"),
        ("wrong-type.csv", format!("{HEADER}\n{good}\ni,org,o,org.changed,two,1,2024-05-01 10:00:00+00,{{}},u,o,1714557601,1,f\n"), "line 3", "sequence"),
        ("bad-time.jsonl", "{\"instance_id\":\"i\",\"aggregate_type\":\"org\",\"aggregate_id\":\"o\",\"event_type\":\"org.added\",\"sequence\":1,\"revision\":1,\"created_at\":\"soon\",\"payload\":{},\"creator\":\"u\",\"owner\":\"o\",\"position\":1,\"in_tx_order\":1}\n".to_owned(), "line 1", "created_at"),
    ];
    for (name, content, line, what) in cases {
        let path = file(name, &content);
        let err = import_file(&db.pool, &path.0).await.unwrap_err();
        assert!(
            matches!(err, ImportError::Malformed { .. }),
            "{name}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(line) && text.contains(what),
            "{name}: {text}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM eventstore.events2")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing of a malformed file is imported");
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
                let event_type = if (tx + n) % 5 == 4 {
                    "org.member.added"
                } else {
                    "org.changed"
                };
                rows.push(StoredEvent {
                    instance_id: instance.into(),
                    aggregate_type: "org".into(),
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
    let types = (vec!["org".to_owned()], vec!["org.changed".to_owned()]);
    for bound in [None, Some(Decimal::new(1_075, 0))] {
        let expected = |instance: &str| -> Vec<SortKey> {
            let mut keys: Vec<SortKey> = rows
                .iter()
                .filter(|e| e.instance_id == instance && e.event_type == "org.changed")
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
