//! L8 (failed verifications written without a bound): per domain, at most
//! `VERIFY_FAILURES_PER_WINDOW` failed checks per `VERIFY_WINDOW` reach the domain's
//! servers and the event store; further calls are refused without a check; concurrent
//! failures coalesce into one event.

use std::process::Command;

use tenancy_core::challenge::VERIFY_FAILURES_PER_WINDOW;
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::servers::LocalDns;

use crate::support::{INSTANCE_TOKEN, ORG, Server, config, curl, has, instance_a, two_instances};

async fn failures(db: &TestDatabase) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM eventstore.events2 WHERE event_type = 'org.domain.verification.failed'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_verifications_are_bounded_per_domain_and_coalesced() {
    if !has("curl", &["--version"]) || !has("python3", &["--version"]) {
        eprintln!("SKIPPED: curl or python3 is not installed (.ci/run installs them)");
        return;
    }
    let db = TestDatabase::fresh().await.unwrap();
    let (a, _) = two_instances(&db).await;
    let dns = LocalDns::start().await.unwrap();
    let settings = format!(
        "[verification]\nresolver = \"{}\"\ntimeout_ms = 500\n",
        dns.address()
    );
    let server = Server::start(&db, &config(&a, &settings)).await;
    let host = "Host: a.sec.test";
    let call = |method: &str, body: String| {
        curl(
            server.port,
            &[&instance_a(), host],
            &format!("{ORG}/{method}"),
            &body,
        )
    };
    let (_, org) = call("AddOrganization", r#"{"name":"verifier"}"#.into());
    let org = org["organizationId"].as_str().unwrap().to_owned();
    let domain = "verify.example";
    let body = format!(r#"{{"organizationId":"{org}","domain":"{domain}"}}"#);
    assert_eq!(call("AddOrganizationDomain", body.clone()).0, 200);
    let generate = format!(
        r#"{{"organizationId":"{org}","domain":"{domain}","type":"DOMAIN_VALIDATION_TYPE_DNS"}}"#
    );
    assert_eq!(
        call("GenerateOrganizationDomainValidation", generate.clone()).0,
        200
    );

    let mut refused = 0;
    for _ in 0..30 {
        let (status, answer) = call("VerifyOrganizationDomain", body.clone());
        assert_eq!(status, 400, "{answer}");
        if answer["message"]
            .as_str()
            .unwrap()
            .contains("verify again in")
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 30 - VERIFY_FAILURES_PER_WINDOW);
    assert_eq!(failures(&db).await, VERIFY_FAILURES_PER_WINDOW as i64);
    let queries = dns.queries().len();
    assert!(
        queries <= VERIFY_FAILURES_PER_WINDOW * 2,
        "{queries} DNS queries for 3 checks"
    );

    // A new token starts afresh; 20 concurrent failing calls write few events.
    assert_eq!(
        call("GenerateOrganizationDomainValidation", generate).0,
        200
    );
    const BURST: &str = r#"
import http.client, sys
from concurrent.futures import ThreadPoolExecutor
port, token, body = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def call(_):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/tenancy.org.v2.OrganizationService/VerifyOrganizationDomain", body,
              {"Content-Type": "application/json", "Authorization": "Bearer " + token, "Host": "a.sec.test"})
    r = c.getresponse(); r.read(); c.close(); return r.status
with ThreadPoolExecutor(20) as pool:
    print(sorted(set(pool.map(call, range(20)))))
"#;
    let out = Command::new("python3")
        .args(["-c", BURST, &server.port.to_string(), INSTANCE_TOKEN, &body])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[400]");
    let burst = failures(&db).await - VERIFY_FAILURES_PER_WINDOW as i64;
    assert!(
        (1..=VERIFY_FAILURES_PER_WINDOW as i64).contains(&burst),
        "{burst} failure events for 20 concurrent failed calls"
    );
}
