//! A fresh, migrated PostgreSQL database per test, dropped when the test passes (kept, and
//! named on stderr, when it fails).
//!
//! The server is chosen once per process and announced on stderr. `TENANCY_TEST_DB` names
//! it (`url`, `docker` or `embedded`: a named provider that fails is an error); unset, the
//! first that works of:
//! 1. `url`: `DATABASE_URL`, if set (the role needs `CREATEDB`);
//! 2. `docker`: a testcontainers container of the image built here for `TENANCY_TEST_PG`
//!    (15 by default; see [`crate::docker`]), when an engine answers and holds the image;
//! 3. `embedded`: a cluster started from the local server binaries (shared by all test
//!    processes of the machine under `$TMPDIR/tenancy-test-pg-<uid>`, left running for the
//!    next process; `cargo xtask db stop` stops it);
//!
//! with one line on stderr for each step passed over, and an error when none works.
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

/// Where the test databases of this process live (`TENANCY_TEST_DB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The server of `DATABASE_URL`.
    Url,
    /// A container of a test image built here (see [`crate::docker`]).
    Docker,
    /// The shared embedded cluster started from the local server binaries.
    Embedded,
}

impl Provider {
    /// The name `TENANCY_TEST_DB` takes for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Url => "url",
            Self::Docker => "docker",
            Self::Embedded => "embedded",
        }
    }
}

/// The server every test database of this process lives on.
struct Server {
    admin: PgConnectOptions,
    provider: Provider,
    /// `server_version` as the server reports it.
    version: String,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

/// The directory of the shared embedded test cluster.
pub fn embedded_root() -> PathBuf {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0);
    std::env::temp_dir().join(format!("tenancy-test-pg-{uid}"))
}

fn parse(url: &str) -> Result<PgConnectOptions, ProvisionError> {
    url.parse::<PgConnectOptions>()
        .map_err(|e| fail(&format!("{url} is not a PostgreSQL URL"), e))
}

/// The provider `TENANCY_TEST_DB` names, or `None` for the automatic choice.
fn requested_provider() -> Result<Option<Provider>, ProvisionError> {
    provider_named(std::env::var("TENANCY_TEST_DB").ok().as_deref())
}

fn provider_named(value: Option<&str>) -> Result<Option<Provider>, ProvisionError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("url") => Ok(Some(Provider::Url)),
        Some("docker") => Ok(Some(Provider::Docker)),
        Some("embedded") => Ok(Some(Provider::Embedded)),
        Some(other) => Err(ProvisionError(format!(
            "TENANCY_TEST_DB={other} is not one of url, docker, embedded"
        ))),
    }
}

async fn admin_of(provider: Provider) -> Result<PgConnectOptions, ProvisionError> {
    match provider {
        Provider::Url => {
            let url = std::env::var("DATABASE_URL").map_err(|_| {
                ProvisionError("TENANCY_TEST_DB=url but DATABASE_URL is not set".into())
            })?;
            parse(&url)
        }
        Provider::Docker => {
            let major = crate::docker::requested_major().map_err(ProvisionError)?;
            crate::docker::image_available(major)
                .await
                .map_err(ProvisionError)?;
            docker_admin(major).await
        }
        Provider::Embedded => {
            let root = embedded_root();
            let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&root, false))
                .await
                .map_err(|e| fail("starting the embedded cluster", e))?
                .map_err(|e| fail("starting the embedded cluster", e))?;
            parse(&cluster.url())
        }
    }
}

/// The container of `major`'s image (checked to be there).
async fn docker_admin(major: u32) -> Result<PgConnectOptions, ProvisionError> {
    let port = crate::docker::start(major).await.map_err(ProvisionError)?;
    parse(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// The automatic choice: `DATABASE_URL`, else docker when the engine holds the image, else
/// embedded; each step passed over is said in one line.
async fn automatic() -> Result<(Provider, PgConnectOptions), ProvisionError> {
    if std::env::var_os("DATABASE_URL").is_some() {
        return Ok((Provider::Url, admin_of(Provider::Url).await?));
    }
    let docker = match crate::docker::requested_major() {
        Ok(major) => crate::docker::image_available(major).await.map(|()| major),
        Err(why) => Err(why),
    };
    match docker {
        Ok(major) => match docker_admin(major).await {
            Ok(admin) => return Ok((Provider::Docker, admin)),
            Err(why) => {
                eprintln!("tenancy-testkit: docker not used: {why}; using the embedded cluster")
            }
        },
        Err(why) => {
            eprintln!("tenancy-testkit: docker not used: {why}; using the embedded cluster")
        }
    }
    let admin = admin_of(Provider::Embedded).await.map_err(|e| {
        ProvisionError(format!(
            "no test database: DATABASE_URL is not set, docker is not usable, and {e}"
        ))
    })?;
    Ok((Provider::Embedded, admin))
}

/// Connects, waiting up to 60 s for a server that is still starting (a reused container
/// that was stopped, an embedded cluster another process just started).
async fn server_version(admin: &PgConnectOptions) -> Result<String, ProvisionError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match admin.connect().await {
            Ok(mut conn) => {
                let version: String = sqlx::query_scalar("SHOW server_version")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| fail("reading the server version", e))?;
                let _ = conn.close().await;
                return Ok(version);
            }
            Err(e) if std::time::Instant::now() >= deadline => {
                return Err(fail("connecting to the test server", e));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

async fn server() -> Result<&'static Server, ProvisionError> {
    SERVER
        .get_or_try_init(|| async {
            let (provider, admin, why) = match requested_provider()? {
                Some(provider) => (provider, admin_of(provider).await?, "TENANCY_TEST_DB"),
                None => {
                    let (provider, admin) = automatic().await?;
                    (provider, admin, "automatic choice")
                }
            };
            let version = server_version(&admin).await?;
            eprintln!(
                "tenancy-testkit: test databases on PostgreSQL {version} from {} ({why})",
                provider.name()
            );
            Ok(Server {
                admin,
                provider,
                version,
            })
        })
        .await
}

/// The provider and the PostgreSQL version (`server_version`) this process's test
/// databases live on, provisioning the server if no test has yet.
pub async fn server_info() -> Result<(Provider, String), ProvisionError> {
    let server = server().await?;
    Ok((server.provider, server.version.clone()))
}

/// The template database for the current migration set, created once per server.
async fn template(admin: &PgConnectOptions) -> Result<String, ProvisionError> {
    let hash = crate::docker::fnv1a(MIGRATOR.iter().flat_map(|m| m.checksum.iter()));
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
    /// A pool on the database, with tenancy's session settings.
    pub pool: PgPool,
    /// The database's name (unique per test).
    pub name: String,
    /// How to connect to it (for a second pool or a `tenancy` process).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_is_named_or_left_to_the_automatic_choice() {
        assert_eq!(provider_named(None).ok(), Some(None));
        assert_eq!(provider_named(Some("")).ok(), Some(None));
        assert_eq!(
            provider_named(Some(" docker ")).ok(),
            Some(Some(Provider::Docker))
        );
        assert_eq!(provider_named(Some("url")).ok(), Some(Some(Provider::Url)));
        assert_eq!(
            provider_named(Some("embedded")).ok(),
            Some(Some(Provider::Embedded))
        );
        let wrong = provider_named(Some("podman")).err().map(|e| e.0);
        assert_eq!(
            wrong.as_deref(),
            Some("TENANCY_TEST_DB=podman is not one of url, docker, embedded")
        );
    }
}
