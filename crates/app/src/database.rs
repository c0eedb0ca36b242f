//! The database: `database_url` when configured, else a private PostgreSQL started from
//! the local server binaries with a persistent data directory, stopped on exit when this
//! process started it.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use sqlx::PgPool;
use tenancy_postgres::embedded::{EmbeddedCluster, EmbeddedError};

/// A connected database, and the embedded cluster behind it if any.
pub struct Database {
    pub pool: PgPool,
    cluster: Option<EmbeddedCluster>,
}

impl Database {
    pub async fn open(
        url: Option<&str>,
        data_dir: Option<PathBuf>,
        relational_schema: Option<&str>,
    ) -> Result<Self> {
        let (url, cluster) = match url {
            Some(url) => (url.to_owned(), None),
            None => {
                let root = data_dir
                    .unwrap_or_else(tenancy_postgres::embedded::default_data_dir)
                    .join("postgres");
                let at = root.clone();
                let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&at, true))
                    .await?
                    .map_err(|e| match e {
                        EmbeddedError::NoBinaries => anyhow!(
                            "no database configured and no PostgreSQL server binaries found: set PG_BINDIR to the directory \
                             holding initdb and pg_ctl, install the distribution's PostgreSQL server package \
                             (e.g. apt-get install postgresql), or set DATABASE_URL / --database-url"
                        ),
                        other => anyhow!("starting the embedded PostgreSQL in {} failed: {other}", root.display()),
                    })?;
                tracing::info!(data_dir = %root.display(), url = %cluster.url(), started = cluster.started_here(), "embedded PostgreSQL");
                tenancy_postgres::embedded::ensure_database(&cluster.url(), "tenancy").await?;
                (cluster.database_url("tenancy"), Some(cluster))
            }
        };
        // One direct connection first: it fails at once where the pool would retry for its
        // whole acquire timeout.
        {
            use sqlx::Connection;
            let probe = sqlx::PgConnection::connect(&url)
                .await
                .map_err(|e| CannotConnect::new(&url, &e))?;
            let _ = probe.close().await;
        }
        let options: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|e| anyhow!("invalid database URL {}: {e}", redact(&url)))?;
        let pool = tenancy_postgres::pool::connect_with_schema(options, 16, relational_schema)
            .await
            .map_err(|e| CannotConnect::new(&url, &e))?;
        tracing::debug!(url = %redact(&url), "connected");
        Ok(Self { pool, cluster })
    }

    /// Closes the pool and stops the embedded server if this process started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.cluster
            && cluster.started_here()
        {
            let stopped = tokio::task::spawn_blocking(move || cluster.stop()).await;
            if !matches!(stopped, Ok(Ok(()))) {
                tracing::warn!("stopping the embedded PostgreSQL failed");
            }
        }
    }
}

/// The database could not be reached, or refused the connection.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot connect to the database at {url}: {reason}; check the URL and that the server runs"
)]
pub struct CannotConnect {
    url: String,
    reason: String,
    /// The server is not there right now (not running yet, restarting, refusing
    /// connections), as opposed to refusing these credentials or this database name.
    pub unavailable: bool,
}

impl CannotConnect {
    fn new(url: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            url: redact(url),
            reason: error.to_string(),
            unavailable: tenancy_postgres::is_database_unavailable(error),
        }
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
