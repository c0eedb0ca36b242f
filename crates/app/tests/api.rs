//! The service API of `tenancy start` end to end, on a real PostgreSQL: a Python grpcio
//! client (stubs generated from `crates/api/proto/` at run time, and reflection) and curl for the
//! JSON protocol, then `tenancy projections verify`: what the API wrote equals the fold
//! of the events it appended.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::Arc;

use serde_json::Value;
use tenancy_core::command::{AddInstance, AddInstanceDomain, run};
use tenancy_eventstore::PgEventStore;
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::servers::LocalDns;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn has(program: &str, args: &[&str]) -> bool {
    StdCommand::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Connect JSON call through curl: (HTTP status, body).
fn curl(port: u16, host: &str, token: &str, method: &str, body: &Value) -> (u16, Value) {
    let out = StdCommand::new("curl")
        .args(["-sS", "-X", "POST", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Host: {host}")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"])
        .args(["-d", &body.to_string()])
        .arg(format!("http://127.0.0.1:{port}/{method}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

// Multi-threaded: the DNS server answers while curl blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_through_clients_this_project_did_not_write() {
    if !has("curl", &["--version"]) {
        eprintln!("SKIPPED: curl is not installed (.ci/run installs it)");
        return;
    }
    let db = TestDatabase::fresh().await.unwrap();
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let store = tenancy_postgres::PgStore::with_events(db.pool.clone(), events);
    let ctx = tenancy_testkit::fixtures::context();
    for (name, host) in [("A", "a.api.test"), ("B", "b.api.test")] {
        let id = run(&store, &ctx, &AddInstance { name: name.into() })
            .await
            .unwrap();
        let domain = AddInstanceDomain {
            instance_id: id,
            domain: host.into(),
            generated: true,
        };
        run(&store, &ctx, &domain).await.unwrap();
    }
    let a: String =
        sqlx::query_scalar("SELECT instance_id FROM instance_domains WHERE domain = 'a.api.test'")
            .fetch_one(&db.pool)
            .await
            .unwrap();

    let dns = LocalDns::start().await.unwrap();
    let (system_token, instance_token) = ("system-secret-token", "instance-a-secret-token");
    let config = tempfile(&format!(
        "[verification]\nresolver = \"{}\"\nprefix = \"api\"\ntimeout_ms = 500\n\n\
         [api]\npage_token_key = \"0123456789abcdef0123456789abcdef\"\n\n\
         [[api.tokens]]\nname = \"ops\"\nsha256 = \"{}\"\n\n\
         [[api.tokens]]\nname = \"a-admin\"\nsha256 = \"{}\"\ninstance_id = \"{a}\"\n",
        dns.address(),
        tenancy_api::auth::token_digest(system_token),
        tenancy_api::auth::token_digest(instance_token),
    ));
    let port = common::free_port();
    let server = common::Process::listening(
        common::tenancy_start(&db.url(), port)
            .arg("--config")
            .arg(&config),
        port,
    )
    .await;

    // Python grpcio, when installed (.ci/run installs it).
    if has(
        "python3",
        &["-c", "import grpc, grpc_tools, grpc_reflection"],
    ) {
        let out = StdCommand::new("python3")
            .arg(workspace().join("crates/app/tests/clients/grpc_client.py"))
            .arg(format!("127.0.0.1:{port}"))
            .arg(workspace().join("crates/api/proto"))
            .args([system_token, instance_token, "a.api.test", "b.api.test"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the Python client failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["instance_id"], a.as_str());
    } else {
        eprintln!(
            "SKIPPED the grpcio part: python3 with grpcio, grpcio-tools and grpcio-reflection is not installed (.ci/run installs them)"
        );
    }

    // JSON over HTTP with curl: an organization, a domain verified over DNS.
    const ORG: &str = "tenancy.org.v2.OrganizationService";
    let (status, body) = curl(
        port,
        "a.api.test",
        instance_token,
        &format!("{ORG}/AddOrganization"),
        &serde_json::json!({"name": "Curl Org"}),
    );
    assert_eq!(status, 200, "{body}");
    let org = body["organizationId"].as_str().unwrap().to_owned();
    let domain = serde_json::json!({"organizationId": org, "domain": "curl.example.org"});
    let (status, body) = curl(
        port,
        "a.api.test",
        instance_token,
        &format!("{ORG}/AddOrganizationDomain"),
        &domain,
    );
    assert_eq!(status, 200, "{body}");
    let mut generate = domain.clone();
    generate["type"] = "DOMAIN_VALIDATION_TYPE_DNS".into();
    let (status, body) = curl(
        port,
        "a.api.test",
        instance_token,
        &format!("{ORG}/GenerateOrganizationDomainValidation"),
        &generate,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["url"], "_api-challenge.curl.example.org");
    let (status, early) = curl(
        port,
        "a.api.test",
        instance_token,
        &format!("{ORG}/VerifyOrganizationDomain"),
        &domain,
    );
    assert_eq!(
        (status, early["code"].as_str()),
        (400, Some("failed_precondition")),
        "{early}"
    );
    dns.set_txt(
        "_api-challenge.curl.example.org",
        &[body["token"].as_str().unwrap()],
    );
    let (status, body) = curl(
        port,
        "a.api.test",
        instance_token,
        &format!("{ORG}/VerifyOrganizationDomain"),
        &domain,
    );
    assert_eq!(status, 200, "{body}");
    let list = serde_json::json!({"organizationId": org});
    let (_, body) = curl(
        port,
        "a.api.test",
        instance_token,
        &format!("{ORG}/ListOrganizationDomains"),
        &list,
    );
    assert_eq!(body["domains"][0]["isVerified"], true, "{body}");
    let (status, body) = curl(
        port,
        "b.api.test",
        instance_token,
        &format!("{ORG}/ListOrganizationDomains"),
        &list,
    );
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, body) = curl(
        port,
        "a.api.test",
        system_token,
        "tenancy.instance.v2.InstanceService/ResolveHost",
        &serde_json::json!({"host": "a.api.test", "organizationDomain": "curl.example.org"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["instanceId"].as_str(), body["organizationId"].as_str()),
        (Some(a.as_str()), Some(org.as_str()))
    );
    drop(server);

    // What the API wrote equals the fold of the events it appended.
    let verify = common::tenancy()
        .args(["projections", "verify"])
        .env("DATABASE_URL", db.url())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(printed.contains(", 0 differences"), "{printed}");
}

fn tempfile(content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "tenancy-api-{}-{}.toml",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&path, content).unwrap();
    path
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
