//! A `tenancy start` on a fresh database with two tokens (a system token and one bound
//! to instance `a`), and the clients the tests talk to it with.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tenancy_core::command::{AddInstance, AddInstanceDomain, run};
use tenancy_eventstore::PgEventStore;
use tenancy_testkit::db::TestDatabase;

pub const SYSTEM_TOKEN: &str = "security-system-token";
pub const INSTANCE_TOKEN: &str = "security-instance-a-token";

/// A file with `content` in the temporary directory.
pub fn tempfile(content: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("tenancy-sec-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

pub use crate::common::{free_port, tenancy};

/// Two instances, `a` (host `a.sec.test`) and `b` (host `b.sec.test`); returns their ids.
pub async fn two_instances(db: &TestDatabase) -> (String, String) {
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let store = tenancy_postgres::PgStore::with_events(db.pool.clone(), events);
    let ctx = tenancy_testkit::fixtures::context();
    let mut ids = Vec::new();
    for (name, host) in [("A", "a.sec.test"), ("B", "b.sec.test")] {
        let id = run(&store, &ctx, &AddInstance { name: name.into() })
            .await
            .unwrap();
        let domain = AddInstanceDomain {
            instance_id: id.clone(),
            domain: host.into(),
            generated: false,
        };
        run(&store, &ctx, &domain).await.unwrap();
        ids.push(id.as_str().to_owned());
    }
    (ids[0].clone(), ids[1].clone())
}

/// The configuration of [`Server`]: both tokens, and `extra` appended.
pub fn config(instance_a: &str, extra: &str) -> String {
    format!(
        "[api]\npage_token_key = \"0123456789abcdef0123456789abcdef\"\n\n\
         [[api.tokens]]\nname = \"ops\"\nsha256 = \"{}\"\n\n\
         [[api.tokens]]\nname = \"a-admin\"\nsha256 = \"{}\"\ninstance_id = \"{instance_a}\"\n\n{extra}",
        tenancy_api::auth::token_digest(SYSTEM_TOKEN),
        tenancy_api::auth::token_digest(INSTANCE_TOKEN),
    )
}

/// A running `tenancy start`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub async fn start(db: &TestDatabase, config: &str) -> Self {
        Self::start_with(db, config, &[]).await
    }

    pub async fn start_with(db: &TestDatabase, config: &str, env: &[(&str, &str)]) -> Self {
        let file = tempfile(config);
        let port = free_port();
        let child = crate::common::tenancy_start(&db.url(), port)
            .arg("--config")
            .arg(&file)
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        crate::common::wait_listening(port).await;
        Self { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn has(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Connect JSON call through curl with extra headers: (HTTP status, body).
pub fn curl(port: u16, headers: &[&str], method: &str, body: &str) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", "POST", "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: application/json"]);
    for header in headers {
        cmd.args(["-H", header]);
    }
    let out = cmd
        .args(["--data-binary", body])
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

pub fn system() -> String {
    format!("Authorization: Bearer {SYSTEM_TOKEN}")
}

pub fn instance_a() -> String {
    format!("Authorization: Bearer {INSTANCE_TOKEN}")
}

/// Raw bytes on a socket, and what comes back until the server closes or `wait` passes.
pub fn raw(port: u16, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

pub const ORG: &str = "tenancy.org.v2.OrganizationService";
pub const INSTANCE: &str = "tenancy.instance.v2.InstanceService";
