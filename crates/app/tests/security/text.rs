//! M2 (NUL): the report's samples against `tenancy start` on PostgreSQL: 400
//! invalid_argument naming the field, nothing written. Every string field of every method
//! over gRPC, Connect JSON and Connect protobuf: `crates/api/tests/text.rs`.

use tenancy_testkit::db::TestDatabase;

use crate::support::{INSTANCE, ORG, Server, config, curl, has, instance_a, system, two_instances};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_anywhere_is_invalid_argument_naming_the_field() {
    if !has("curl", &["--version"]) {
        eprintln!("SKIPPED: curl is not installed (.ci/run installs it)");
        return;
    }
    let db = TestDatabase::fresh().await.unwrap();
    let (a, _) = two_instances(&db).await;
    let server = Server::start(&db, &config(&a, "")).await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM eventstore.events2")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let host = "Host: a.sec.test";
    for (auth, method, body, field) in [
        (
            instance_a(),
            format!("{ORG}/AddOrganization"),
            r#"{"name":"a\u0000b"}"#.to_owned(),
            "name",
        ),
        (
            instance_a(),
            format!("{ORG}/ListOrganizations"),
            r#"{"filters":[{"nameFilter":{"name":"a\u0000"}}]}"#.to_owned(),
            "filters[0].nameFilter.name",
        ),
        (
            instance_a(),
            format!("{ORG}/ListOrganizations"),
            r#"{"filters":[{"domainFilter":{"domain":"a\u0000"}}]}"#.to_owned(),
            "domain",
        ),
        (
            instance_a(),
            format!("{ORG}/ListOrganizations"),
            r#"{"filters":[{"idFilter":{"id":"\u0000"}}]}"#.to_owned(),
            "id",
        ),
        (
            system(),
            format!("{INSTANCE}/GetInstance"),
            r#"{"instanceId":"\u0000"}"#.to_owned(),
            "instanceId",
        ),
        (
            system(),
            format!("{INSTANCE}/ListInstances"),
            r#"{"filters":[{"inIdsFilter":{"ids":["x\u0000"]}}]}"#.to_owned(),
            "ids",
        ),
        (
            system(),
            format!("{INSTANCE}/ListInstances"),
            r#"{"filters":[{"customDomainsFilter":{"domains":["x\u0000"]}}]}"#.to_owned(),
            "domains",
        ),
        (
            system(),
            format!("{INSTANCE}/UpdateInstance"),
            format!(r#"{{"instanceId":"{a}","instanceName":"x\u0000"}}"#),
            "instanceName",
        ),
    ] {
        let (status, answer) = curl(server.port, &[&auth, host], &method, &body);
        assert_eq!(status, 400, "{method} {body}: {answer}");
        assert_eq!(answer["code"], "invalid_argument", "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains("NUL"),
            "{method}: {message}"
        );
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM eventstore.events2")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(after, events, "nothing written");
}
