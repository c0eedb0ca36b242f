//! H1 and L9 (egress and loose domains), through the API: a name some URL parser reads as
//! an IP address, a loopback name, a single label or a name over 253 characters is no
//! organization or custom domain (INVALID_ARGUMENT naming `domain`), so verification never
//! starts for one. The connection-level guard is tested on the adapter
//! (`crates/challenge/tests/checker.rs`: every spelling connects nowhere).

use tenancy_testkit::db::TestDatabase;

use crate::support::{INSTANCE, ORG, Server, config, curl, has, instance_a, system, two_instances};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_shaped_loopback_single_label_and_long_domains_are_refused_everywhere() {
    if !has("curl", &["--version"]) {
        eprintln!("SKIPPED: curl is not installed (.ci/run installs it)");
        return;
    }
    let db = TestDatabase::fresh().await.unwrap();
    let (a, _) = two_instances(&db).await;
    let server = Server::start(&db, &config(&a, "")).await;
    let host = "Host: a.sec.test";
    let (status, org) = curl(
        server.port,
        &[&instance_a(), host],
        &format!("{ORG}/AddOrganization"),
        r#"{"name":"egress"}"#,
    );
    assert_eq!(status, 200, "{org}");
    let org_id = org["organizationId"].as_str().unwrap().to_owned();
    let long = format!("{}{}.example", "a".repeat(60), ".b".repeat(93));
    let mut samples: Vec<String> = [
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "0",
        "127.0.1",
        "127.0.0.1",
        "169.254.43518",
        "167772161",
        "10.0.0.0x1",
        "localhost",
        "app.localhost",
        "com",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert!(long.len() > 253 && long.len() <= 255, "{}", long.len());
    samples.push(long);
    for domain in &samples {
        for (method, body, auth) in [
            (
                "AddOrganizationDomain",
                format!(r#"{{"organizationId":"{org_id}","domain":"{domain}"}}"#),
                instance_a(),
            ),
            (
                "GenerateOrganizationDomainValidation",
                format!(
                    r#"{{"organizationId":"{org_id}","domain":"{domain}","type":"DOMAIN_VALIDATION_TYPE_HTTP"}}"#
                ),
                instance_a(),
            ),
            (
                "VerifyOrganizationDomain",
                format!(r#"{{"organizationId":"{org_id}","domain":"{domain}"}}"#),
                instance_a(),
            ),
        ] {
            let (status, body) = curl(
                server.port,
                &[&auth, host],
                &format!("{ORG}/{method}"),
                &body,
            );
            assert_eq!(status, 400, "{method} {domain}: {body}");
            assert_eq!(
                body["code"], "invalid_argument",
                "{method} {domain}: {body}"
            );
            assert!(
                body["message"].as_str().unwrap().contains("domain"),
                "{body}"
            );
        }
        let (status, body) = curl(
            server.port,
            &[&system()],
            &format!("{INSTANCE}/AddCustomDomain"),
            &format!(r#"{{"instanceId":"{a}","customDomain":"{domain}"}}"#),
        );
        assert_eq!(status, 400, "AddCustomDomain {domain}: {body}");
    }
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM eventstore.events2 WHERE event_type LIKE 'org.domain.%' \
         OR (event_type LIKE 'instance.domain.%' AND aggregate_id = $1 AND created_at > now() - interval '1 hour' \
             AND payload ->> 'domain' <> 'a.sec.test')",
    )
    .bind(&a)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(events, 0, "nothing written");
}
