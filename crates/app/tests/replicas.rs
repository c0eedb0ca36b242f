//! `tenancy start` with a streaming replica (`read_database_urls`): List calls are served
//! by the replica, a write answers with a consistency token, and a read that sends the
//! token back sees the write while the replica is held behind. `/metrics` shows the reads
//! per pool.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

mod common;

use std::process::Command as StdCommand;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tenancy_core::command::{AddInstance, AddInstanceDomain, run};
use tenancy_eventstore::PgEventStore;
use tenancy_testkit::replica::Replicated;

const ORG: &str = "tenancy.org.v2.OrganizationService";
const TOKEN: &str = "system-secret-token-for-replicas";

/// A Connect JSON call: (HTTP status, the consistency header if any, body).
fn call(
    port: u16,
    method: &str,
    body: &Value,
    consistency: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut command = StdCommand::new("curl");
    command
        .args(["-sS", "-D", "-", "-X", "POST"])
        .args(["-H", "Host: a.replica.test"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["-H", "Content-Type: application/json"]);
    if let Some(token) = consistency {
        command.args(["-H", &format!("x-tenancy-consistency: {token}")]);
    }
    let out = command
        .args(["-d", &body.to_string()])
        .arg(format!("http://127.0.0.1:{port}/{ORG}/{method}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let token = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("x-tenancy-consistency")
            .then(|| value.trim().to_owned())
    });
    (
        status,
        token,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn names(list: &Value) -> Vec<String> {
    list["organizations"]
        .as_array()
        .map(|orgs| {
            orgs.iter()
                .filter_map(|o| o["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn metrics(port: u16) -> String {
    let out = StdCommand::new("curl")
        .args(["-sS", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_come_from_the_replica_and_a_token_reads_the_write() {
    let cluster = Replicated::start("").await.unwrap();
    let events = Arc::new(PgEventStore::new(cluster.pool.clone()));
    let store = tenancy_postgres::PgStore::with_events(cluster.pool.clone(), events);
    let ctx = tenancy_testkit::fixtures::context();
    let instance = run(&store, &ctx, &AddInstance { name: "A".into() })
        .await
        .unwrap();
    let domain = AddInstanceDomain {
        instance_id: instance,
        domain: "a.replica.test".into(),
        generated: true,
    };
    run(&store, &ctx, &domain).await.unwrap();

    let config = std::env::temp_dir().join(format!("tenancy-replicas-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[replicas]\ncheck_interval_ms = 100\n\n[[api.tokens]]\nname = \"ops\"\nsha256 = \"{}\"\n",
            tenancy_api::auth::token_digest(TOKEN)
        ),
    )
    .unwrap();
    let port = common::free_port();
    let _server = common::Process::listening(
        common::tenancy_start(&cluster.primary_url(), port)
            .arg("--config")
            .arg(&config)
            .env("TENANCY_READ_DATABASE_URLS", cluster.replica_url()),
        port,
    )
    .await;
    cluster.caught_up().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // a replica check

    // Held behind: the write's token reads it, a read without it does not.
    cluster.pause_replay().await.unwrap();
    let (status, token, body) = call(
        port,
        "AddOrganization",
        &serde_json::json!({"name": "Replica Org"}),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let token = token.expect("a write answers with x-tenancy-consistency");
    let (status, _, stale) = call(port, "ListOrganizations", &serde_json::json!({}), None);
    assert_eq!(status, 200, "{stale}");
    assert!(
        !names(&stale).contains(&"Replica Org".to_owned()),
        "{stale}"
    );
    let (status, _, fresh) = call(
        port,
        "ListOrganizations",
        &serde_json::json!({}),
        Some(&token),
    );
    assert_eq!(status, 200, "{fresh}");
    assert!(names(&fresh).contains(&"Replica Org".to_owned()), "{fresh}");
    let (status, _, wrong) = call(
        port,
        "ListOrganizations",
        &serde_json::json!({}),
        Some("yesterday"),
    );
    assert_eq!(
        (status, wrong["code"].as_str()),
        (400, Some("invalid_argument")),
        "{wrong}"
    );

    // Caught up, the replica shows it without a token.
    cluster.resume_replay().await.unwrap();
    cluster.caught_up().await.unwrap();
    let (_, _, caught_up) = call(port, "ListOrganizations", &serde_json::json!({}), None);
    assert!(
        names(&caught_up).contains(&"Replica Org".to_owned()),
        "{caught_up}"
    );

    let text = metrics(port);
    let replica = format!(
        "tenancy_db_reads_total{{pool=\"127.0.0.1:{}\"}}",
        cluster.replica.port()
    );
    assert!(sample(&text, &replica) >= 2.0, "{text}");
    assert!(
        sample(&text, "tenancy_db_reads_total{pool=\"primary\"}") >= 1.0,
        "{text}"
    );
    assert_eq!(sample(&text, "tenancy_db_replica_serving{"), 1.0, "{text}");
    let _ = std::fs::remove_file(&config);
}
