//! The DNS challenge: a TXT record at `_<prefix>-challenge.<domain>` whose value is the
//! token.

use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use tenancy_core::challenge::{Challenge, ChallengeFailure, ChallengeSettings};
use tenancy_core::{Error, Result};

use crate::{ChallengeConfig, shown};

/// The resolver both challenges use: the configured server, else the system's. No cache,
/// so that a retry after publishing sees the new record at once.
pub(crate) fn resolver(config: &ChallengeConfig) -> Result<TokioResolver> {
    let mut builder = match config.resolver {
        Some(address) => {
            let connection = |mut connection: ConnectionConfig| {
                connection.port = address.port();
                connection
            };
            let server = NameServerConfig::new(
                address.ip(),
                true,
                vec![
                    connection(ConnectionConfig::udp()),
                    connection(ConnectionConfig::tcp()),
                ],
            );
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], vec![server]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| {
            Error::internal(format!(
                "no DNS resolver configured and the system's cannot be read: {e}"
            ))
        })?,
    };
    let options = builder.options_mut();
    options.timeout = config.timeout;
    options.attempts = 1;
    options.cache_size = 0;
    options.use_hosts_file = ResolveHosts::Never;
    builder
        .build()
        .map_err(|e| Error::internal(format!("building the DNS resolver: {e}")))
}

/// Looks for the token in the TXT records of `_<prefix>-challenge.<domain>`.
#[derive(Clone)]
pub struct DnsChallenge {
    resolver: TokioResolver,
    settings: ChallengeSettings,
    timeout: Duration,
}

impl std::fmt::Debug for DnsChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsChallenge")
            .field("prefix", &self.settings.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DnsChallenge {
    pub(crate) fn new(resolver: TokioResolver, config: &ChallengeConfig) -> Self {
        Self {
            resolver,
            settings: config.settings(),
            timeout: config.timeout,
        }
    }

    /// Looks up the challenge's TXT record (no cache) and compares each value with the token.
    pub async fn check(&self, challenge: &Challenge) -> std::result::Result<(), ChallengeFailure> {
        let name = self.settings.dns_name(&challenge.domain);
        // Fully qualified: no search domains appended.
        let lookup =
            tokio::time::timeout(self.timeout, self.resolver.txt_lookup(format!("{name}.")))
                .await
                .map_err(|_| self.timed_out(&name))?;
        let lookup = match lookup {
            Ok(lookup) => lookup,
            Err(error) if error.is_no_records_found() || error.is_nx_domain() => {
                return Err(ChallengeFailure::RecordNotFound { name });
            }
            Err(NetError::Timeout) => return Err(self.timed_out(&name)),
            Err(error) => {
                return Err(ChallengeFailure::Unreachable {
                    target: format!("the DNS server for {name}"),
                    reason: error.to_string(),
                });
            }
        };
        // One TXT record may be split into several strings: they form one value.
        let values: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect();
        if values.iter().any(|v| v.trim() == challenge.token) {
            return Ok(());
        }
        if values.is_empty() {
            return Err(ChallengeFailure::RecordNotFound { name });
        }
        Err(ChallengeFailure::Mismatch {
            location: format!("TXT {name}"),
            found: values
                .iter()
                .map(|v| shown(v))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    fn timed_out(&self, name: &str) -> ChallengeFailure {
        ChallengeFailure::Timeout {
            target: format!("the DNS server for {name}"),
            after_ms: self.timeout.as_millis(),
        }
    }
}
