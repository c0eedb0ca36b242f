//! H2 (ids collide across replicas): every process leases its sonyflake machine id from
//! the database, so ids are unique across any number of processes without configuration;
//! a generated id that collides anyway is retried, never shown.

use std::process::Command;
use std::time::Duration;

use tenancy_core::ports::IdGenerator;
use tenancy_postgres::ids::{LeasedIds, MACHINE_ID_LOCK_CLASS};
use tenancy_testkit::db::TestDatabase;

use crate::support::{ORG, SYSTEM_TOKEN, Server, config, has, two_instances};

/// 300 AddOrganization calls, 16 at a time, through Python's http.client: the count of
/// each HTTP status.
const CLIENT: &str = r#"
import http.client, json, sys, collections
from concurrent.futures import ThreadPoolExecutor
port, token, instance, tag = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def call(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/tenancy.org.v2.OrganizationService/AddOrganization",
              json.dumps({"name": f"{tag}-{i}"}),
              {"Content-Type": "application/json", "Authorization": "Bearer " + token,
               "x-tenancy-instance-id": instance})
    r = c.getresponse(); body = r.read(); c.close()
    return r.status if r.status == 200 else (r.status, body[:200])
with ThreadPoolExecutor(16) as pool:
    print(json.dumps(collections.Counter(str(s) for s in pool.map(call, range(300)))))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_create_900_organizations_concurrently_without_a_collision() {
    if !has("python3", &["--version"]) {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    }
    let db = TestDatabase::fresh().await.unwrap();
    let (a, _) = two_instances(&db).await;
    let config = config(&a, "");
    let replicas = [
        Server::start(&db, &config).await,
        Server::start(&db, &config).await,
        Server::start(&db, &config).await,
    ];
    let clients: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(n, server)| {
            Command::new("python3")
                .args(["-c", CLIENT])
                .arg(server.port.to_string())
                .args([SYSTEM_TOKEN, a.as_str(), &format!("r{n}")])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for client in clients {
        let out = client.wait_with_output().unwrap();
        let counts = String::from_utf8_lossy(&out.stdout);
        assert_eq!(counts.trim(), r#"{"200": 300}"#, "every create succeeds");
    }
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT id) FROM organizations WHERE instance_id = $1 AND name ~ '^r[0-2]-'",
    )
    .bind(&a)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(distinct, 900);
    let _ = ORG;
}

#[tokio::test]
async fn leases_are_distinct_and_a_lost_lease_stops_the_generator_until_taken_again() {
    let db = TestDatabase::fresh().await.unwrap();
    let leases = [
        LeasedIds::lease(&db.pool).await.unwrap(),
        LeasedIds::lease(&db.pool).await.unwrap(),
        LeasedIds::lease(&db.pool).await.unwrap(),
    ];
    let mut machines: Vec<u16> = leases.iter().map(|l| l.machine_id().unwrap()).collect();
    machines.sort_unstable();
    machines.dedup();
    assert_eq!(machines.len(), 3, "{machines:?}");
    for lease in &leases {
        let id: u64 = lease.next_id().unwrap().parse().unwrap();
        assert_eq!(
            id & 0xffff,
            u64::from(lease.machine_id().unwrap()),
            "ZITADEL's layout"
        );
    }

    // Kill the session holding the first lease and take its id from another session,
    // as a starting process would: the generator must move to another id.
    let held = leases[0].machine_id().unwrap();
    let pid: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_locks \
         WHERE locktype = 'advisory' AND classid::int = $1 AND objid::int = $2 AND granted",
    )
    .bind(MACHINE_ID_LOCK_CLASS)
    .bind(i32::from(held))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let mut other = db.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut *other)
        .await
        .unwrap();
    // pg_terminate_backend only signals: the backend releases its locks when it exits.
    let mut taken = false;
    for _ in 0..200 {
        taken = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(MACHINE_ID_LOCK_CLASS)
            .bind(i32::from(held))
            .fetch_one(&mut *other)
            .await
            .unwrap();
        if taken {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(taken, "the terminated session's lock was never released");
    let mut moved = None;
    for _ in 0..100 {
        if let Some(now) = leases[0].machine_id().filter(|id| *id != held) {
            moved = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved = moved.expect("the generator kept an id another session holds");
    let id: u64 = leases[0].next_id().unwrap().parse().unwrap();
    assert_eq!(id & 0xffff, u64::from(moved));
    assert!(!machines.contains(&moved), "not an id another lease holds");
}
