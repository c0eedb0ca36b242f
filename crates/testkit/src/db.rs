//! A fresh, migrated PostgreSQL database per test, dropped when the test passes (kept, and
//! named on stderr, when it fails).
//!
//! The server is chosen once per process, in this order:
//! 1. `DATABASE_URL`, if set (the role needs `CREATEDB`);
//! 2. a PostgreSQL container via testcontainers, where a Docker engine answers;
//! 3. an embedded cluster started from the local server binaries (shared by all test
//!    processes of the machine under `$TMPDIR/tenancy-test-pg-<uid>`, left running for the
//!    next process; `cargo xtask db stop` stops it);
//! 4. otherwise an error naming the three ways out.
//!
//! Fresh databases are cloned from a template migrated once per migration set, so a test
//! pays for `CREATE DATABASE`, not for the migrations.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};
use tenancy_postgres::embedded::EmbeddedCluster;
use tenancy_postgres::migrate::MIGRATOR;
use tokio::sync::OnceCell;

/// Why no test database could be provided.
#[derive(Debug)]
pub struct ProvisionError(pub String);

impl std::fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProvisionError {}

fn fail(what: &str, e: impl std::fmt::Display) -> ProvisionError {
    ProvisionError(format!("{what}: {e}"))
}

/// The server every test database of this process lives on.
struct Server {
    admin: PgConnectOptions,
    /// Keeps the testcontainers container alive for the whole process.
    _container: Option<Box<dyn std::any::Any + Send + Sync>>,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

/// The directory of the shared embedded test cluster.
pub fn embedded_root() -> PathBuf {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0);
    std::env::temp_dir().join(format!("tenancy-test-pg-{uid}"))
}

fn docker_answers() -> Result<(), String> {
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        let path = host.strip_prefix("unix://").unwrap_or(&host).to_owned();
        return if std::os::unix::net::UnixStream::connect(&path).is_ok()
            || !host.starts_with("unix://")
        {
            Ok(())
        } else {
            Err(format!("DOCKER_HOST={host} does not answer"))
        };
    }
    let socket = "/var/run/docker.sock";
    std::os::unix::net::UnixStream::connect(socket)
        .map(drop)
        .map_err(|e| format!("no Docker engine answered at {socket} ({e})"))
}

async fn start_container() -> Result<Server, ProvisionError> {
    use testcontainers_modules::postgres::Postgres;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    let container = Postgres::default()
        .start()
        .await
        .map_err(|e| fail("starting the PostgreSQL container", e))?;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .map_err(|e| fail("reading the container's port", e))?;
    let url = format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres");
    Ok(Server {
        admin: parse(&url)?,
        _container: Some(Box::new(container)),
    })
}

fn parse(url: &str) -> Result<PgConnectOptions, ProvisionError> {
    url.parse::<PgConnectOptions>()
        .map_err(|e| fail("DATABASE_URL is not a PostgreSQL URL", e))
}

async fn server() -> Result<&'static Server, ProvisionError> {
    SERVER
        .get_or_try_init(|| async {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                return Ok(Server { admin: parse(&url)?, _container: None });
            }
            match docker_answers() {
                Ok(()) => return start_container().await,
                Err(why) => eprintln!("tenancy-testkit: testcontainers skipped: {why}; using the embedded cluster"),
            }
            let root = embedded_root();
            let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&root, false))
                .await
                .map_err(|e| fail("starting the embedded cluster", e))?
                .map_err(|e| {
                    ProvisionError(format!(
                        "no test database: DATABASE_URL is not set, no Docker engine answered, and the embedded cluster failed: {e}"
                    ))
                })?;
            Ok(Server { admin: parse(&cluster.url())?, _container: None })
        })
        .await
}

/// The template database for the current migration set, created once per server.
async fn template(admin: &PgConnectOptions) -> Result<String, ProvisionError> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for migration in MIGRATOR.iter() {
        for byte in migration.checksum.iter() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    let name = format!("tenancy_template_{hash:016x}");
    let mut conn = admin
        .connect()
        .await
        .map_err(|e| fail("connecting to the test server", e))?;
    // One process builds the template; the others wait on the lock and then find it.
    sqlx::query("SELECT pg_advisory_lock(hashtext('tenancy-testkit-template'))")
        .execute(&mut conn)
        .await
        .map_err(|e| fail("locking the template", e))?;
    let built = build_template(&mut conn, admin, &name).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext('tenancy-testkit-template'))")
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    built.map(|()| name)
}

async fn build_template(
    conn: &mut PgConnection,
    admin: &PgConnectOptions,
    name: &str,
) -> Result<(), ProvisionError> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| fail("looking for the template", e))?;
    if exists {
        return Ok(());
    }
    // A half-built template of a crashed run is dropped and rebuilt.
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut *conn)
    .await
    .map_err(|e| fail("dropping a stale template", e))?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut *conn)
        .await
        .map_err(|e| fail("creating the template", e))?;
    let mut template = admin
        .clone()
        .database(name)
        .connect()
        .await
        .map_err(|e| fail("connecting to the template", e))?;
    tenancy_postgres::migrate::migrate_on(&mut template, None)
        .await
        .map_err(|e| fail("migrating the template", e))?;
    let _ = template.close().await;
    sqlx::query(AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true"
    )))
    .execute(&mut *conn)
    .await
    .map_err(|e| fail("marking the template", e))?;
    Ok(())
}

/// A fresh migrated database; dropped on drop unless the test is panicking.
#[derive(Debug)]
pub struct TestDatabase {
    pub pool: PgPool,
    pub name: String,
    pub options: PgConnectOptions,
    admin: PgConnectOptions,
}

impl TestDatabase {
    /// Provisions a fresh database (see the module docs for how the server is chosen).
    pub async fn fresh() -> Result<Self, ProvisionError> {
        let server = server().await?;
        let template = template(&server.admin).await?;
        Self::create(server, &template).await
    }

    /// Provisions an empty database, not migrated: for tests of the migrations themselves
    /// and of databases laid out by others (ZITADEL). Its `pool` is opened before anything
    /// is created: open a new one (`tenancy_postgres::pool::connect_with(db.options...)`)
    /// once the layout exists.
    pub async fn empty() -> Result<Self, ProvisionError> {
        let server = server().await?;
        Self::create(server, "template0").await
    }

    async fn create(server: &Server, template: &str) -> Result<Self, ProvisionError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "tenancy_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000
        );
        let mut admin = server
            .admin
            .connect()
            .await
            .map_err(|e| fail("connecting to the test server", e))?;
        let mut attempt = 0;
        loop {
            let created = sqlx::query(AssertSqlSafe(format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
            )))
            .execute(&mut admin)
            .await;
            match created {
                Ok(_) => break,
                // Another process may be cloning the same template this very moment.
                Err(e)
                    if attempt < 50 && e.to_string().contains("being accessed by other users") =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(fail("creating the test database", e)),
            }
        }
        let _ = admin.close().await;
        let options = server.admin.clone().database(&name);
        let pool = tenancy_postgres::pool::connect_with(options.clone(), 10)
            .await
            .map_err(|e| fail("connecting to the test database", e))?;
        Ok(Self {
            pool,
            name,
            options,
            admin: server.admin.clone(),
        })
    }

    /// The URL of this database (for CLIs under test).
    pub fn url(&self) -> String {
        self.options.to_url_lossy().to_string()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "tenancy-testkit: test failed; database {} kept for inspection",
                self.name
            );
            return;
        }
        let (name, admin) = (self.name.clone(), self.admin.clone());
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut conn = admin.connect().await.ok()?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!(
                "tenancy-testkit: could not drop test database {}",
                self.name
            );
        }
    }
}
