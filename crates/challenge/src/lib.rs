//! # tenancy-challenge
//!
//! The adapters of [`tenancy_core::challenge::DomainChallenge`]: a DNS TXT record at
//! `_<prefix>-challenge.<domain>` looked up through hickory's resolver, and an HTTP file
//! at `https://<domain>/.well-known/<prefix>-challenge/<token>` fetched with hyper on a
//! connection to a checked address, with a timeout, a size limit and a guard against requests to loopback, private and
//! link-local addresses (server-side request forgery).
//!
//! In production `Checker::new(ChallengeConfig::default())` asks the system's resolver
//! and fetches over https. Here, a DNS server on loopback holds the record:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tenancy_challenge::{ChallengeConfig, Checker};
//! use tenancy_core::challenge::{Challenge, ChallengeFailure, DomainChallenge};
//! use tenancy_core::model::ValidationType;
//! use tenancy_core::value::DomainName;
//!
//! let dns = tenancy_testkit::servers::LocalDns::start().await?;
//! let checker = Checker::new(ChallengeConfig {
//!     resolver: Some(dns.address()),
//!     ..ChallengeConfig::default()
//! })?;
//! let challenge = Challenge {
//!     domain: DomainName::parse("acme.example")?,
//!     validation_type: ValidationType::Dns,
//!     token: "tokentokentoken".into(),
//! };
//! // Nothing published yet: the failure says what to do.
//! let missing = checker.check(&challenge).await;
//! assert!(matches!(missing, Err(ChallengeFailure::RecordNotFound { .. })), "{missing:?}");
//!
//! dns.set_txt("_zitadel-challenge.acme.example", &["tokentokentoken"]);
//! checker.check(&challenge).await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![deny(missing_docs)]

mod dns;
mod guard;
mod http;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tenancy_core::challenge::{Challenge, ChallengeFailure, ChallengeSettings, DomainChallenge};
use tenancy_core::model::ValidationType;
use tenancy_core::{Error, Result};

pub use dns::DnsChallenge;
pub use guard::is_public;
pub use http::HttpChallenge;

/// How challenges are looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeConfig {
    /// `_<prefix>-challenge.<domain>`, `/.well-known/<prefix>-challenge/<token>`.
    pub prefix: String,
    /// The DNS server to ask (UDP and TCP); `None`: the system's (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// For one DNS lookup, and for one HTTP request from connect to the last byte.
    pub timeout: Duration,
    /// Largest HTTP body read; the token is 32 bytes.
    pub max_body_bytes: usize,
    /// `https` in production; `http` for tests against a local server.
    pub http_scheme: HttpScheme,
    /// A port other than the scheme's, for tests.
    pub http_port: Option<u16>,
    /// Allow HTTP requests to loopback, private and link-local addresses (tests only).
    pub allow_private_targets: bool,
}

/// The scheme of the HTTP challenge's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpScheme {
    /// `https://`: what production uses.
    Https,
    /// `http://`: for tests against a loopback server only.
    Http,
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        Self {
            prefix: tenancy_core::challenge::DEFAULT_PREFIX.to_owned(),
            resolver: None,
            timeout: Duration::from_secs(5),
            max_body_bytes: 4096,
            http_scheme: HttpScheme::Https,
            http_port: None,
            allow_private_targets: false,
        }
    }
}

impl ChallengeConfig {
    fn settings(&self) -> ChallengeSettings {
        ChallengeSettings {
            prefix: self.prefix.clone(),
            ..ChallengeSettings::default()
        }
    }
}

/// Both adapters behind one port: the challenge's validation type picks the adapter.
#[derive(Debug, Clone)]
pub struct Checker {
    dns: DnsChallenge,
    http: HttpChallenge,
}

impl Checker {
    /// Both checkers from `config`; InvalidArgument when its prefix or limits are invalid.
    pub fn new(config: ChallengeConfig) -> Result<Self> {
        config.settings().validate()?;
        if config.timeout.is_zero() {
            return Err(Error::invalid("challenge timeout", "must be positive"));
        }
        let resolver = dns::resolver(&config)?;
        Ok(Self {
            dns: DnsChallenge::new(resolver.clone(), &config),
            http: HttpChallenge::new(resolver, &config)?,
        })
    }
}

#[async_trait]
impl DomainChallenge for Checker {
    async fn check(&self, challenge: &Challenge) -> std::result::Result<(), ChallengeFailure> {
        match challenge.validation_type {
            ValidationType::Dns => self.dns.check(challenge).await,
            ValidationType::Http => self.http.check(challenge).await,
        }
    }
}

/// What was found where the token should be, for a message (short, printable).
fn shown(found: &str) -> String {
    let mut shown: String = found.chars().take(64).collect();
    if found.chars().count() > 64 {
        shown.push('…');
    }
    format!("{shown:?}")
}
