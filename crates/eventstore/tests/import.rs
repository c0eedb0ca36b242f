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
