//! M3, L3, L4 (one case folding): names and domains compare by ASCII case folding only,
//! in the model (bulk path, `verify`) and in PostgreSQL (batch path, indexes, ignore-case
//! filters) alike, on any database locale. Greek final sigma, Turkish dotted and dotless
//! I, German ß and ligatures through both projection paths and `verify`; ignore-case
//! filters find non-ASCII names; a raced uniqueness error names a stable rule and the
//! value as the caller wrote it.

use std::process::Command;

use serde_json::json;
use tenancy_testkit::db::TestDatabase;

use crate::support::{ORG, SYSTEM_TOKEN, Server, config, curl, has, system, tempfile, tenancy};

fn events(lines: &[(&str, &str, u32)]) -> String {
    lines
        .iter()
        .map(|(org, name, seq)| {
            let (aggregate_type, aggregate_id, event_type, payload) = if org.is_empty() {
                ("instance", "sigma1", "instance.added", json!({"name": "Sigma"}))
            } else {
                ("org", *org, "org.added", json!({"name": name}))
            };
            json!({"instance_id": "sigma1", "aggregate_type": aggregate_type, "aggregate_id": aggregate_id,
                   "event_type": event_type, "sequence": 1, "revision": 1,
                   "created_at": "2024-05-01T10:00:00Z", "payload": payload, "creator": "u",
                   "owner": aggregate_id, "position": format!("1714557600.{seq:04}"), "in_tx_order": 1})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_folding_for_both_paths_filters_and_errors() {
    let db = TestDatabase::fresh().await.unwrap();
    let url = db.url();
    let run = |args: &[&str]| {
        let mut cmd = tenancy();
        cmd.args(args).env("DATABASE_URL", &url);
        cmd
    };
    // A fresh instance: folded in memory by the bulk path.
    let first = tempfile(&events(&[
        ("", "", 1),
        ("sig-a", "ΟΔΟΣ", 2),
        ("sig-b", "ΟΔΟς", 3),
        ("sig-c", "İx", 4),
        ("sig-d", "i\u{307}x", 5),
        ("sig-g", "STRASSE", 6),
        ("sig-h", "straße", 7),
        ("sig-i", "\u{fb01}le", 8),
        ("sig-j", "FILE", 9),
    ]));
    ok(run(&["events", "import"]).arg(&first));
    ok(&mut run(&["projections", "run", "--until-caught-up"]));
    // The same instance, now projected: the batch path (PostgreSQL's indexes).
    let second = tempfile(&events(&[
        ("sig-e", "οδοσ", 10),
        ("sig-f", "οδος", 11),
        ("sig-k", "ıx", 12),
        ("sig-l", "\u{fb00}", 13),
    ]));
    ok(run(&["events", "import"]).arg(&second));
    ok(&mut run(&["projections", "run", "--until-caught-up"]));
    let failed = ok(&mut run(&["projections", "failed"]));
    assert!(!failed.contains("sig-"), "{failed}");
    let verify = ok(&mut run(&["projections", "verify"]));
    assert!(verify.contains("0 differences"), "{verify}");
    let orgs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM organizations WHERE instance_id = 'sigma1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(orgs, 12);

    if !has("curl", &["--version"]) || !has("python3", &["--version"]) {
        eprintln!("SKIPPED (API part): curl or python3 is not installed");
        return;
    }
    let server = Server::start(&db, &config("sigma1", "")).await;
    let header = "x-tenancy-instance-id: sigma1";
    let names = |filter: serde_json::Value| {
        let body = json!({"filters": [{"nameFilter": filter}]}).to_string();
        let (status, answer) = curl(
            server.port,
            &[&system(), header],
            &format!("{ORG}/ListOrganizations"),
            &body,
        );
        assert_eq!(status, 200, "{answer}");
        let mut names: Vec<String> = answer["organizations"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|o| o["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    assert_eq!(
        names(json!({"name": "ΟΔΟΣ", "method": "TEXT_FILTER_METHOD_STARTS_WITH_IGNORE_CASE"})),
        ["ΟΔΟΣ"]
    );
    assert_eq!(
        names(json!({"name": "ΔΟ", "method": "TEXT_FILTER_METHOD_CONTAINS_IGNORE_CASE"})),
        ["ΟΔΟΣ", "ΟΔΟς"]
    );
    assert_eq!(
        names(json!({"name": "İ", "method": "TEXT_FILTER_METHOD_STARTS_WITH_IGNORE_CASE"})),
        ["İx"]
    );
    assert_eq!(
        names(json!({"name": "strasse", "method": "TEXT_FILTER_METHOD_EQUALS_IGNORE_CASE"})),
        ["STRASSE"]
    );
    assert_eq!(
        names(json!({"name": "file", "method": "TEXT_FILTER_METHOD_EQUALS_IGNORE_CASE"})),
        ["FILE"]
    );

    // L4: 21 racing creates of one name in three spellings: one wins, every other caller
    // is told the stable rule and its own spelling.
    const RACE: &str = r#"
import http.client, json, sys
from concurrent.futures import ThreadPoolExecutor
port, token = int(sys.argv[1]), sys.argv[2]
def call(name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/tenancy.org.v2.OrganizationService/AddOrganization", json.dumps({"name": name}),
              {"Content-Type": "application/json", "Authorization": "Bearer " + token, "x-tenancy-instance-id": "sigma1"})
    r = c.getresponse(); body = json.loads(r.read() or b"{}"); c.close()
    return [name, r.status, body.get("message", "")]
with ThreadPoolExecutor(21) as pool:
    print(json.dumps(list(pool.map(call, ["Race Ops", "RACE OPS", "race ops"] * 7))))
"#;
    let out = Command::new("python3")
        .args(["-c", RACE, &server.port.to_string(), SYSTEM_TOKEN])
        .output()
        .unwrap();
    let results: Vec<(String, u16, String)> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        results.iter().filter(|r| r.1 == 200).count(),
        1,
        "{results:?}"
    );
    for (name, status, message) in results.iter().filter(|r| r.1 != 200) {
        assert_eq!(*status, 409, "{message}");
        assert_eq!(
            message,
            &format!("already exists: organization name: {name}")
        );
    }
}
