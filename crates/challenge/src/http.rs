//! The HTTP challenge: a file at `https://<domain>/.well-known/<prefix>-challenge/<token>`
//! whose content is the token.
//!
//! Every connection, redirects included, resolves through [`GuardedResolver`], which
//! refuses names with a loopback, private or link-local address; IP literals (which skip
//! resolution) are checked before the request and on every redirect.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use tenancy_core::challenge::{Challenge, ChallengeFailure, ChallengeSettings};
use tenancy_core::{Error, Result};

use crate::guard::is_public;
use crate::{ChallengeConfig, HttpScheme, shown};

const MAX_REDIRECTS: usize = 3;

/// A name resolved to an address verification must not contact.
#[derive(Debug, thiserror::Error)]
#[error("{domain} resolves to {address}, which is not a public address")]
struct Forbidden {
    domain: String,
    address: IpAddr,
}

/// A name that does not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{domain} does not resolve: {reason}")]
struct Unresolvable {
    domain: String,
    reason: String,
}

/// reqwest's resolver: hickory, then the address guard.
#[derive(Clone)]
struct GuardedResolver {
    resolver: TokioResolver,
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let domain = name.as_str().to_owned();
            let found = this
                .resolver
                .lookup_ip(format!("{domain}."))
                .await
                .map_err(|e| Unresolvable {
                    domain: domain.clone(),
                    reason: e.to_string(),
                })?;
            let addresses: Vec<IpAddr> = found.iter().collect();
            if addresses.is_empty() {
                return Err(Unresolvable {
                    domain,
                    reason: "no A or AAAA record".into(),
                }
                .into());
            }
            // One internal address is enough to refuse: which one a client picks is not ours
            // to predict.
            if let Some(address) = addresses
                .iter()
                .copied()
                .find(|a| !this.allow_private && !is_public(*a))
            {
                return Err(Forbidden { domain, address }.into());
            }
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Fetches the challenge file.
#[derive(Clone)]
pub struct HttpChallenge {
    client: reqwest::Client,
    settings: ChallengeSettings,
    scheme: HttpScheme,
    port: Option<u16>,
    max_body: usize,
    timeout: Duration,
    allow_private: bool,
}

impl std::fmt::Debug for HttpChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpChallenge")
            .field("prefix", &self.settings.prefix)
            .field("scheme", &self.scheme)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// reqwest is built without a TLS crypto provider; ring is the one this workspace links.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err: the application installed one first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl HttpChallenge {
    pub(crate) fn new(resolver: TokioResolver, config: &ChallengeConfig) -> Result<Self> {
        install_crypto_provider();
        let allow_private = config.allow_private_targets;
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let literal = attempt.url().host_str().and_then(literal_ip);
            match literal {
                Some(address) if !allow_private && !is_public(address) => {
                    let domain = address.to_string();
                    attempt.error(Forbidden { domain, address })
                }
                _ => attempt.follow(),
            }
        });
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                resolver,
                allow_private,
            }))
            .redirect(policy)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!(
                "tenancy-domain-verification/",
                env!("CARGO_PKG_VERSION")
            ))
            .no_proxy()
            .build()
            .map_err(|e| Error::internal_with("building the HTTP client", e))?;
        Ok(Self {
            client,
            settings: config.settings(),
            scheme: config.http_scheme,
            port: config.http_port,
            max_body: config.max_body_bytes,
            timeout: config.timeout,
            allow_private,
        })
    }

    fn url(&self, challenge: &Challenge) -> String {
        let scheme = match self.scheme {
            HttpScheme::Https => "https",
            HttpScheme::Http => "http",
        };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "{scheme}://{}{port}{}",
            challenge.domain,
            self.settings.http_path(&challenge.token)
        )
    }

    pub async fn check(&self, challenge: &Challenge) -> std::result::Result<(), ChallengeFailure> {
        let url = self.url(challenge);
        if let Some(address) = literal_ip(challenge.domain.as_str())
            && !self.allow_private
            && !is_public(address)
        {
            return Err(ChallengeFailure::ForbiddenTarget {
                domain: challenge.domain.to_string(),
                address: address.to_string(),
            });
        }
        // One deadline over headers and body (the client's timeout covers each request).
        match tokio::time::timeout(self.timeout, self.fetch(&url, &challenge.token)).await {
            Ok(result) => result,
            Err(_) => Err(ChallengeFailure::Timeout {
                target: url,
                after_ms: self.timeout.as_millis(),
            }),
        }
    }

    async fn fetch(&self, url: &str, token: &str) -> std::result::Result<(), ChallengeFailure> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| self.failure(url, &e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(ChallengeFailure::FileNotFound {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(ChallengeFailure::Unreachable {
                target: url.to_owned(),
                reason: format!("it answered HTTP {status}"),
            });
        }
        let too_large = || ChallengeFailure::TooLarge {
            url: url.to_owned(),
            limit: self.max_body,
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.failure(url, &e))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let content = String::from_utf8_lossy(&body);
        if content.trim() == token {
            Ok(())
        } else {
            Err(ChallengeFailure::Mismatch {
                location: url.to_owned(),
                found: shown(content.trim()),
            })
        }
    }

    fn failure(&self, url: &str, error: &reqwest::Error) -> ChallengeFailure {
        if let Some(forbidden) = find::<Forbidden>(error) {
            return ChallengeFailure::ForbiddenTarget {
                domain: forbidden.domain.clone(),
                address: forbidden.address.to_string(),
            };
        }
        if error.is_timeout() {
            return ChallengeFailure::Timeout {
                target: url.to_owned(),
                after_ms: self.timeout.as_millis(),
            };
        }
        let reason = match find::<Unresolvable>(error) {
            Some(unresolvable) => unresolvable.to_string(),
            None => chain(error),
        };
        ChallengeFailure::Unreachable {
            target: url.to_owned(),
            reason,
        }
    }
}

/// `host` as an IP address when it is one (`[::1]` included).
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The first error of type `T` in `error`'s source chain.
fn find<'e, T: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The messages of `error`'s chain, joined.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(e) = current {
        parts.push(e.to_string());
        current = e.source();
    }
    parts.dedup();
    parts.join(": ")
}
