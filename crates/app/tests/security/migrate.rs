//! M4 (concurrent migrate): processes migrating one fresh database at the same time all
//! succeed; the later ones wait for the first, then find the schema up to date.

use std::process::Stdio;

use tenancy_testkit::db::TestDatabase;

use crate::support::tenancy;

#[tokio::test]
async fn three_processes_migrating_a_fresh_database_all_succeed() {
    let db = TestDatabase::fresh().await.unwrap();
    sqlx::raw_sql(
        "DROP SCHEMA eventstore CASCADE; DROP SCHEMA tenancy CASCADE; DROP SCHEMA zitadel CASCADE",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            tenancy()
                .arg("migrate")
                .env("DATABASE_URL", db.url())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied = 0;
    for run in runs {
        let out = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if stdout.contains("applied [") {
            applied += 1;
        } else {
            assert!(stdout.contains("up to date"), "{stdout}");
        }
    }
    assert_eq!(applied, 1, "one process applied the migrations");
}
