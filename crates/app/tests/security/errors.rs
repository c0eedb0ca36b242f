//! L6 (lists of a missing instance are NOT_FOUND, as every other call) and L7 (every
//! validation message names the field) against `tenancy start`. L2 (a 500 logs its whole
//! cause chain) is `tenancy_core::Error::chain`, tested beside it.

use tenancy_testkit::db::TestDatabase;

use crate::support::{INSTANCE, ORG, Server, config, curl, has, instance_a, system, two_instances};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_of_a_missing_or_deleted_instance_are_not_found() {
    if !has("curl", &["--version"]) {
        eprintln!("SKIPPED: curl is not installed (.ci/run installs it)");
        return;
    }
    let db = TestDatabase::fresh().await.unwrap();
    let (a, b) = two_instances(&db).await;
    // A third token bound to an instance that does not exist.
    let orphan = "[[api.tokens]]\nname = \"orphan\"\nsha256 = \"".to_owned()
        + &tenancy_api::auth::token_digest("orphan-token")
        + "\"\ninstance_id = \"nonexistent\"\n";
    let server = Server::start(&db, &config(&a, &orphan)).await;
    let (status, _) = curl(
        server.port,
        &[&system()],
        &format!("{INSTANCE}/DeleteInstance"),
        &format!(r#"{{"instanceId":"{b}"}}"#),
    );
    assert_eq!(status, 200);
    for missing in ["nonexistent", b.as_str()] {
        let header = format!("x-tenancy-instance-id: {missing}");
        for (method, body, headers) in [
            (
                format!("{ORG}/ListOrganizations"),
                "{}".to_owned(),
                vec![system(), header.clone()],
            ),
            (
                format!("{ORG}/ListOrganizationDomains"),
                r#"{"organizationId":"x"}"#.to_owned(),
                vec![system(), header.clone()],
            ),
            (
                format!("{INSTANCE}/ListCustomDomains"),
                format!(r#"{{"instanceId":"{missing}"}}"#),
                vec![system()],
            ),
            (
                format!("{INSTANCE}/ListTrustedDomains"),
                format!(r#"{{"instanceId":"{missing}"}}"#),
                vec![system()],
            ),
            (
                format!("{INSTANCE}/GetInstance"),
                format!(r#"{{"instanceId":"{missing}"}}"#),
                vec![system()],
            ),
        ] {
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let (status, answer) = curl(server.port, &headers, &method, &body);
            assert_eq!(status, 404, "{method} of {missing}: {answer}");
            assert_eq!(
                answer["message"],
                format!("instance not found: {missing}"),
                "{method}"
            );
        }
    }
    let orphan_auth = "Authorization: Bearer orphan-token";
    let (status, answer) = curl(
        server.port,
        &[orphan_auth, "x-tenancy-instance-id: nonexistent"],
        &format!("{ORG}/ListOrganizations"),
        "{}",
    );
    assert_eq!(
        status, 404,
        "an instance token of a missing instance: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_messages_name_the_field() {
    if !has("curl", &["--version"]) {
        eprintln!("SKIPPED: curl is not installed (.ci/run installs it)");
        return;
    }
    let db = TestDatabase::fresh().await.unwrap();
    let (a, _) = two_instances(&db).await;
    let server = Server::start(&db, &config(&a, "")).await;
    let host = "Host: a.sec.test";
    for (body, field) in [
        (r#"{"pagination":{"limit":-1}}"#, "pagination.limit"),
        (r#"{"pagination":{"offset":"x"}}"#, "pagination.offset"),
        (r#"{"pagination":{"asc":"yes"}}"#, "pagination.asc"),
        (r#"{"filters":[{"idFilter":{}}]}"#, "filters.id_filter.id"),
        (
            r#"{"filters":[{"idFilter":{"id":"  "}}]}"#,
            "filters.id_filter.id",
        ),
        (r#"{"sortingColumn":"NOPE"}"#, "sortingColumn"),
    ] {
        let (status, answer) = curl(
            server.port,
            &[&instance_a(), host],
            &format!("{ORG}/ListOrganizations"),
            body,
        );
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
        assert!(!message.contains("untagged enum"), "{message}");
    }
}
