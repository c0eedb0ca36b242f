#![cfg(feature = "postgres")]
//! The database provider that served is the one asked for: CI's log says which provider and
//! version each run used, and this test makes that claim checkable.

use tenancy_testkit::db::{Provider, TestDatabase, server_info};

#[tokio::test]
async fn the_provider_that_serves_is_the_one_asked_for() {
    let (provider, version) = server_info().await.expect("a test server");
    println!("provider {} PostgreSQL {version}", provider.name());
    match std::env::var("TENANCY_TEST_DB").ok().as_deref() {
        Some(asked @ ("url" | "docker" | "embedded")) => assert_eq!(provider.name(), asked),
        _ if std::env::var_os("DATABASE_URL").is_some() => assert_eq!(provider, Provider::Url),
        _ => {}
    }
    if provider == Provider::Docker {
        let major = std::env::var("TENANCY_TEST_PG").unwrap_or_else(|_| "15".into());
        assert!(
            version.starts_with(&format!("{major}.")),
            "asked for PostgreSQL {major}, served {version}"
        );
    }
    // And the server provides what every test needs: a fresh migrated database.
    let db = TestDatabase::fresh().await.expect("a fresh database");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'tenancy'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("counting tables");
    assert!(tables >= 5, "the migrations ran: {tables} tables");
}
