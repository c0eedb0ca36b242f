//! Configuration: a TOML file, environment variables and command-line flags, loaded with
//! the `config` crate. Precedence, highest first: flags; `DATABASE_URL`; `TENANCY_*`
//! variables (`TENANCY_LISTEN`, `TENANCY_PROJECTION__WORKERS`, ...); the file given by
//! `--config` / `TENANCY_CONFIG`, else `./tenancy.toml` if present; built-in defaults.
//!
//! Fails closed: an unknown key anywhere (a misspelled table, a typo in a token entry, a
//! `TENANCY_*` variable that is no setting) is an error naming it, and every value is
//! checked ([`Settings::validate`]) before anything connects or binds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use tenancy_projection::EngineConfig;

/// `TENANCY_*` variables that are not settings: read elsewhere (`TENANCY_CONFIG`,
/// `TENANCY_LOG`) or by the test and benchmark harnesses (prefixes below).
const NOT_SETTINGS: &[&str] = &["TENANCY_CONFIG", "TENANCY_LOG", READ_DATABASE_URLS];
/// A list in one variable, comma-separated: read by [`load`] itself, since the `config`
/// crate splits lists only when it also parses every other variable as numbers and
/// booleans (a token key of digits would lose its leading zeros).
const READ_DATABASE_URLS: &str = "TENANCY_READ_DATABASE_URLS";
const HARNESS_PREFIXES: &[&str] = &["TENANCY_SOAK_", "TENANCY_TEST_", "TENANCY_BENCH_"];

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The database; none = the embedded cluster in `data_dir`.
    pub database_url: Option<String>,
    /// Streaming replicas of it (hot standbys) that serve reads: host resolution misses
    /// and the API's Get and List calls. Writes, the projection and `LISTEN` stay on
    /// `database_url`. `TENANCY_READ_DATABASE_URLS` takes them comma-separated.
    pub read_database_urls: Vec<String>,
    pub replicas: ReplicaSettings,
    /// Where the embedded cluster keeps its data.
    pub data_dir: Option<PathBuf>,
    /// HTTP address of `tenancy start`.
    pub listen: String,
    /// Schema of the relational tables next to a ZITADEL (default `tenancy`); without a
    /// ZITADEL they live in `zitadel` unless this is set. Decided by the first migration.
    pub relational_schema: Option<String>,
    pub projection: ProjectionSettings,
    pub verification: VerificationSettings,
    pub api: ApiSettings,
    pub server: ServerSettings,
}

/// When a replica of `read_database_urls` serves reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaSettings {
    /// A replica further behind the primary serves no reads until it catches up.
    pub max_lag_ms: u64,
    /// How often each replica is checked (reachable, still a standby, its lag).
    pub check_interval_ms: u64,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        let defaults = tenancy_postgres::replicas::ReplicaConfig::default();
        Self {
            max_lag_ms: defaults.max_lag.as_millis() as u64,
            check_interval_ms: defaults.check_interval.as_millis() as u64,
        }
    }
}

impl ReplicaSettings {
    pub fn config(&self) -> tenancy_postgres::replicas::ReplicaConfig {
        tenancy_postgres::replicas::ReplicaConfig {
            max_lag: Duration::from_millis(self.max_lag_ms),
            check_interval: Duration::from_millis(self.check_interval_ms),
            ..tenancy_postgres::replicas::ReplicaConfig::default()
        }
    }
}

/// The listener of `tenancy start` (every route: API, health, metrics).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// A connection that has not sent a whole request head by then is closed (also an idle
    /// HTTP/1.1 keep-alive connection).
    pub header_read_timeout_ms: u64,
    /// HTTP/2 pings at this interval; a peer that does not answer within it is dropped.
    pub http2_keepalive_secs: u64,
    /// At shutdown, calls in flight may finish for this long; then connections are closed.
    pub shutdown_timeout_ms: u64,
    /// How long `tenancy start` keeps trying while its database is unavailable at startup
    /// (not running yet, restarting, refusing connections); 0: not at all. A wrong
    /// password or database name fails at once.
    pub database_wait_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        let defaults = tenancy_api::ServeConfig::default();
        Self {
            header_read_timeout_ms: defaults.header_read_timeout.as_millis() as u64,
            http2_keepalive_secs: defaults.http2_keepalive.as_secs(),
            shutdown_timeout_ms: defaults.shutdown_timeout.as_millis() as u64,
            database_wait_secs: 60,
        }
    }
}

impl ServerSettings {
    pub fn config(&self) -> tenancy_api::ServeConfig {
        tenancy_api::ServeConfig {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            http2_keepalive: Duration::from_secs(self.http2_keepalive_secs),
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
        }
    }
}

/// The service API of `tenancy start` (gRPC and Connect JSON on `listen`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Bearer tokens, stored as SHA-256 digests (`tenancy api-token new` makes one);
    /// without any, every API call is UNAUTHENTICATED.
    pub tokens: Vec<tenancy_api::auth::TokenEntry>,
    /// The secret (at least 32 bytes) page tokens are signed with; none: a random key per
    /// process, so page tokens do not survive a restart (clients start their walk again).
    pub page_token_key: Option<String>,
    /// Largest request body, either protocol.
    pub max_request_bytes: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            page_token_key: None,
            max_request_bytes: tenancy_api::DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// Org domain verification (`tenancy org-domains ...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationSettings {
    /// `_<prefix>-challenge.<domain>` and `/.well-known/<prefix>-challenge/<token>`.
    pub prefix: String,
    /// DNS server (`ip:port`) for TXT and address lookups; none: the system's.
    pub resolver: Option<std::net::SocketAddr>,
    /// One DNS lookup, one HTTP request.
    pub timeout_ms: u64,
    /// How long a generated token can be verified.
    pub token_lifetime_secs: u64,
    /// Largest challenge file read.
    pub max_body_bytes: usize,
    /// `http` instead of `https`, another port, and private addresses allowed: for tests
    /// against local servers only.
    pub insecure_http_port: Option<u16>,
}

impl Default for VerificationSettings {
    fn default() -> Self {
        let defaults = tenancy_challenge::ChallengeConfig::default();
        Self {
            prefix: defaults.prefix,
            resolver: None,
            timeout_ms: defaults.timeout.as_millis() as u64,
            token_lifetime_secs: tenancy_core::challenge::DEFAULT_LIFETIME.as_secs(),
            max_body_bytes: defaults.max_body_bytes,
            insecure_http_port: None,
        }
    }
}

impl VerificationSettings {
    pub fn challenge(&self) -> tenancy_challenge::ChallengeConfig {
        let insecure = self.insecure_http_port.is_some();
        tenancy_challenge::ChallengeConfig {
            prefix: self.prefix.clone(),
            resolver: self.resolver,
            timeout: Duration::from_millis(self.timeout_ms),
            max_body_bytes: self.max_body_bytes,
            http_scheme: if insecure {
                tenancy_challenge::HttpScheme::Http
            } else {
                tenancy_challenge::HttpScheme::Https
            },
            http_port: self.insecure_http_port,
            allow_private_targets: insecure,
        }
    }

    pub fn tokens(&self) -> tenancy_core::challenge::ChallengeSettings {
        tenancy_core::challenge::ChallengeSettings {
            prefix: self.prefix.clone(),
            lifetime: Duration::from_secs(self.token_lifetime_secs),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionSettings {
    pub batch_size: u32,
    pub max_failure_count: i16,
    pub workers: usize,
    pub sweep_interval_secs: u64,
    /// On an adopted ZITADEL store (no notifications): how often to look for new events.
    pub poll_interval_ms: u64,
    /// A not yet projected instance with at most this many events is folded in memory
    /// and written in one go (0 = always in batches).
    pub bulk_limit: u32,
    /// `/readyz` fails when the projection lags more than this.
    pub stuck_after_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: None,
            read_database_urls: Vec::new(),
            replicas: ReplicaSettings::default(),
            data_dir: None,
            listen: "127.0.0.1:8080".into(),
            relational_schema: None,
            projection: ProjectionSettings::default(),
            verification: VerificationSettings::default(),
            api: ApiSettings::default(),
            server: ServerSettings::default(),
        }
    }
}

impl Default for ProjectionSettings {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Self {
            batch_size: engine.batch_size,
            max_failure_count: engine.max_failure_count,
            workers: engine.workers,
            sweep_interval_secs: engine.sweep_interval.as_secs(),
            poll_interval_ms: engine.poll_interval.as_millis() as u64,
            bulk_limit: engine.bulk_limit,
            stuck_after_secs: 300,
        }
    }
}

impl ProjectionSettings {
    /// The engine's configuration (the values are checked by [`Settings::validate`]).
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            batch_size: self.batch_size,
            max_failure_count: self.max_failure_count,
            workers: self.workers,
            sweep_interval: Duration::from_secs(self.sweep_interval_secs),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            bulk_limit: self.bulk_limit,
            ..EngineConfig::default()
        }
    }
}

/// `Err` naming the setting when `ok` is false.
fn require(ok: bool, key: &str, rule: &str, value: impl std::fmt::Display) -> Result<()> {
    if ok {
        Ok(())
    } else {
        anyhow::bail!("invalid setting {key} = {value}: {rule}")
    }
}

impl Settings {
    /// Every value checked, each error naming its key: what `tenancy start` would
    /// otherwise find out only after migrating and binding, or silently correct.
    pub fn validate(&self) -> Result<()> {
        self.listen.parse::<std::net::SocketAddr>().map_err(|e| {
            anyhow::anyhow!(
                "invalid setting listen = {:?}: {e} (expected ip:port)",
                self.listen
            )
        })?;
        for (index, url) in self.read_database_urls.iter().enumerate() {
            let invalid = |why: String| {
                anyhow::anyhow!(
                    "invalid setting read_database_urls[{index}] = {}: {why}",
                    crate::database::redact(url)
                )
            };
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid("not a postgres:// URL".into()));
            }
            url.parse::<sqlx::postgres::PgConnectOptions>()
                .map_err(|e| invalid(e.to_string()))?;
        }
        if !self.read_database_urls.is_empty() && self.database_url.is_none() {
            anyhow::bail!(
                "read_database_urls needs database_url: replicas follow a primary that is \
                 configured, not the embedded cluster"
            );
        }
        require(
            self.replicas.max_lag_ms >= 100,
            "replicas.max_lag_ms",
            "must be at least 100",
            self.replicas.max_lag_ms,
        )?;
        require(
            (50..=60_000).contains(&self.replicas.check_interval_ms),
            "replicas.check_interval_ms",
            "must be 50 to 60000",
            self.replicas.check_interval_ms,
        )?;
        if let Some(schema) = &self.relational_schema {
            tenancy_postgres::layout::check_schema_name(schema)
                .with_context(|| format!("invalid setting relational_schema = {schema:?}"))?;
        }
        let p = &self.projection;
        require(
            p.batch_size >= 1,
            "projection.batch_size",
            "must be at least 1",
            p.batch_size,
        )?;
        require(
            p.max_failure_count >= 1,
            "projection.max_failure_count",
            "must be at least 1",
            p.max_failure_count,
        )?;
        require(
            (1..=64).contains(&p.workers),
            "projection.workers",
            "must be 1 to 64",
            p.workers,
        )?;
        require(
            p.sweep_interval_secs >= 1,
            "projection.sweep_interval_secs",
            "must be at least 1",
            p.sweep_interval_secs,
        )?;
        require(
            p.poll_interval_ms >= 10,
            "projection.poll_interval_ms",
            "must be at least 10",
            p.poll_interval_ms,
        )?;
        require(
            p.stuck_after_secs >= 1,
            "projection.stuck_after_secs",
            "must be at least 1",
            p.stuck_after_secs,
        )?;
        let v = &self.verification;
        let prefix_only = tenancy_core::challenge::ChallengeSettings {
            prefix: v.prefix.clone(),
            lifetime: Duration::from_secs(1),
        };
        prefix_only
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid setting verification.prefix: {e}"))?;
        require(
            v.token_lifetime_secs >= 1,
            "verification.token_lifetime_secs",
            "must be at least 1",
            v.token_lifetime_secs,
        )?;
        require(
            v.timeout_ms >= 1,
            "verification.timeout_ms",
            "must be at least 1",
            v.timeout_ms,
        )?;
        require(
            v.max_body_bytes >= 64,
            "verification.max_body_bytes",
            "must be at least 64 (a token is 32 bytes)",
            v.max_body_bytes,
        )?;
        let a = &self.api;
        require(
            a.max_request_bytes >= 1024,
            "api.max_request_bytes",
            "must be at least 1024",
            a.max_request_bytes,
        )?;
        if let Some(key) = &a.page_token_key {
            require(
                key.len() >= 32,
                "api.page_token_key",
                "needs at least 32 bytes",
                format_args!("<{} bytes>", key.len()),
            )?;
        }
        let server = &self.server;
        require(
            server.header_read_timeout_ms >= 100,
            "server.header_read_timeout_ms",
            "must be at least 100",
            server.header_read_timeout_ms,
        )?;
        require(
            server.http2_keepalive_secs >= 1,
            "server.http2_keepalive_secs",
            "must be at least 1",
            server.http2_keepalive_secs,
        )?;
        require(
            server.shutdown_timeout_ms >= 1,
            "server.shutdown_timeout_ms",
            "must be at least 1",
            server.shutdown_timeout_ms,
        )?;
        require(
            server.database_wait_secs <= 3_600,
            "server.database_wait_secs",
            "must be at most 3600 (an hour)",
            server.database_wait_secs,
        )?;
        tenancy_api::auth::ApiTokens::new(&a.tokens)
            .map_err(|e| anyhow::anyhow!("invalid setting api.tokens: {e}"))?;
        Ok(())
    }
}

/// The `TENANCY_*` variables that are settings (see [`NOT_SETTINGS`]).
fn setting_variables() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(name, _)| {
            name.starts_with("TENANCY_")
                && !NOT_SETTINGS.contains(&name.as_str())
                && !HARNESS_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .collect()
}

/// Loads the settings; `database_url` and `data_dir` from flags (or `DATABASE_URL`) win.
pub fn load(
    file: Option<&Path>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
) -> Result<Settings> {
    let mut builder = config::Config::builder();
    builder = match file {
        Some(path) => builder.add_source(config::File::from(path).required(true)),
        None => builder.add_source(config::File::with_name("tenancy").required(false)),
    };
    builder = builder.add_source(
        config::Environment::with_prefix("TENANCY")
            .prefix_separator("_")
            .separator("__")
            .source(Some(setting_variables())),
    );
    if let Ok(urls) = std::env::var(READ_DATABASE_URLS) {
        let urls: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        builder = builder
            .set_override("read_database_urls", urls)
            .context("TENANCY_READ_DATABASE_URLS")?;
    }
    let mut settings: Settings = builder
        .build()
        .and_then(config::Config::try_deserialize)
        .with_context(|| match file {
            Some(path) => format!("reading the configuration {}", path.display()),
            None => "reading the configuration (tenancy.toml, TENANCY_* variables)".to_owned(),
        })?;
    if database_url.is_some() {
        settings.database_url = database_url;
    }
    if data_dir.is_some() {
        settings.data_dir = data_dir;
    }
    if let Some(listen) = listen {
        settings.listen = listen;
    }
    settings.validate()?;
    Ok(settings)
}
