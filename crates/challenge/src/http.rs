//! The HTTP challenge: a file at `https://<domain>/.well-known/<prefix>-challenge/<token>`
//! whose content is the token.
//!
//! The egress policy is enforced on the address actually connected to, for every
//! connection, redirects included: this client resolves names itself (hickory, no
//! cache), refuses a name with any non-public address, connects to exactly the addresses
//! it checked and checks the connected peer again before a byte is sent. An IP literal in
//! a URL (in any spelling the URL parser accepts) is an address like any other. So DNS
//! rebinding and differences between URL parsers have nothing to slip through. Redirects
//! are bounded and never go from `https` to `http`; time and body are bounded.
//!
//! The caller learns that a target was unreachable, never why at the transport level (no
//! OS error text, no TLS detail): such text would let a caller probe hosts and ports. The
//! cause is logged at debug level.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use hickory_resolver::TokioResolver;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{HOST, LOCATION, USER_AGENT};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls_platform_verifier::ConfigVerifierExt as _;
use tenancy_core::challenge::{Challenge, ChallengeFailure, ChallengeSettings};
use tenancy_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::{Host, Url};

use crate::guard::is_public;
use crate::{ChallengeConfig, HttpScheme, shown};

/// Redirects followed at most (ZITADEL nextgen ADR 061: bounded redirects).
pub const MAX_REDIRECTS: usize = 3;

const AGENT: &str = concat!("tenancy-domain-verification/", env!("CARGO_PKG_VERSION"));

/// Fetches the challenge file.
#[derive(Clone)]
pub struct HttpChallenge {
    resolver: TokioResolver,
    tls: TlsConnector,
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

/// rustls is built without a default crypto provider; ring is the one this workspace links.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err: the application installed one first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Why one exchange failed, before it becomes what the caller is told.
enum Failure {
    Told(ChallengeFailure),
    /// A transport failure: logged, and told as "unreachable" without detail.
    Transport(String),
}

impl From<ChallengeFailure> for Failure {
    fn from(failure: ChallengeFailure) -> Self {
        Self::Told(failure)
    }
}

impl HttpChallenge {
    pub(crate) fn new(resolver: TokioResolver, config: &ChallengeConfig) -> Result<Self> {
        install_crypto_provider();
        let tls = rustls::ClientConfig::with_platform_verifier()
            .map_err(|e| Error::internal_with("loading the system's TLS roots", e))?;
        Ok(Self {
            resolver,
            tls: TlsConnector::from(Arc::new(tls)),
            settings: config.settings(),
            scheme: config.http_scheme,
            port: config.http_port,
            max_body: config.max_body_bytes,
            timeout: config.timeout,
            allow_private: config.allow_private_targets,
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

    /// Fetches the challenge file (checked addresses only, size and time limited) and compares it with the token.
    pub async fn check(&self, challenge: &Challenge) -> std::result::Result<(), ChallengeFailure> {
        let url = self.url(challenge);
        // One deadline over every hop, headers and body.
        match tokio::time::timeout(self.timeout, self.fetch(&url, &challenge.token)).await {
            Ok(result) => result,
            Err(_) => Err(ChallengeFailure::Timeout {
                target: url,
                after_ms: self.timeout.as_millis(),
            }),
        }
    }

    async fn fetch(&self, first: &str, token: &str) -> std::result::Result<(), ChallengeFailure> {
        let unreachable = |target: &Url, reason: &str| ChallengeFailure::Unreachable {
            target: target.to_string(),
            reason: reason.to_owned(),
        };
        let mut url = Url::parse(first).map_err(|_| ChallengeFailure::Unreachable {
            target: first.to_owned(),
            reason: "not a URL".into(),
        })?;
        for hop in 0..=MAX_REDIRECTS {
            let response = match self.get(&url).await {
                Ok(response) => response,
                Err(Failure::Told(failure)) => return Err(failure),
                Err(Failure::Transport(cause)) => {
                    tracing::debug!(url = %url, %cause, "challenge file request failed");
                    return Err(unreachable(&url, "no answer over HTTP(S)"));
                }
            };
            let status = response.status();
            if status.is_redirection() {
                if hop == MAX_REDIRECTS {
                    return Err(unreachable(&url, "more than 3 redirects"));
                }
                let next = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| unreachable(&url, "a redirect without a valid Location"))?;
                if !matches!(next.scheme(), "http" | "https")
                    || (url.scheme() == "https" && next.scheme() != "https")
                {
                    return Err(unreachable(
                        &url,
                        &format!(
                            "a redirect to {} is not followed (https only)",
                            next.scheme()
                        ),
                    ));
                }
                url = next;
                continue;
            }
            return self.read_token(&url, response, token).await;
        }
        Err(unreachable(&url, "more than 3 redirects"))
    }

    async fn read_token(
        &self,
        url: &Url,
        response: Response<Incoming>,
        token: &str,
    ) -> std::result::Result<(), ChallengeFailure> {
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Err(ChallengeFailure::FileNotFound {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(ChallengeFailure::Unreachable {
                target: url.to_string(),
                reason: format!("it answered HTTP {status}"),
            });
        }
        let too_large = || ChallengeFailure::TooLarge {
            url: url.to_string(),
            limit: self.max_body,
        };
        let declared = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        let mut body = response.into_body();
        let mut content = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|cause| {
                tracing::debug!(url = %url, %cause, "challenge file body failed");
                ChallengeFailure::Unreachable {
                    target: url.to_string(),
                    reason: "the answer broke off".into(),
                }
            })?;
            if let Some(chunk) = frame.data_ref() {
                if content.len() + chunk.len() > self.max_body {
                    return Err(too_large());
                }
                content.extend_from_slice(chunk);
            }
        }
        let content = String::from_utf8_lossy(&content);
        if content.trim() == token {
            Ok(())
        } else {
            Err(ChallengeFailure::Mismatch {
                location: url.to_string(),
                found: shown(content.trim()),
            })
        }
    }

    /// One GET of `url` on a connection to a checked address.
    async fn get(&self, url: &Url) -> std::result::Result<Response<Incoming>, Failure> {
        let host = url
            .host()
            .ok_or_else(|| Failure::Transport("no host in the URL".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Failure::Transport(format!("no port for {}", url.scheme())))?;
        let (name, addresses) = match &host {
            Host::Domain(domain) => (domain.to_string(), self.resolve(domain).await?),
            Host::Ipv4(v4) => (v4.to_string(), vec![IpAddr::V4(*v4)]),
            Host::Ipv6(v6) => (v6.to_string(), vec![IpAddr::V6(*v6)]),
        };
        for address in &addresses {
            self.permit(&name, *address)?;
        }
        let stream = self.connect(&name, &addresses, port).await?;
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let request = Request::get(path)
            .header(HOST, authority)
            .header(USER_AGENT, AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(|e| Failure::Transport(e.to_string()))?;
        if url.scheme() == "https" {
            let server_name = ServerName::try_from(name.clone())
                .map_err(|e| Failure::Transport(e.to_string()))?;
            let tls = self
                .tls
                .connect(server_name, stream)
                .await
                .map_err(|e| Failure::Transport(format!("TLS: {e}")))?;
            exchange(tls, request).await
        } else {
            exchange(stream, request).await
        }
    }

    /// The addresses of `domain`; refused when any is not public (which one a connection
    /// would take is not ours to predict).
    async fn resolve(&self, domain: &str) -> std::result::Result<Vec<IpAddr>, Failure> {
        let unresolvable = |reason: String| {
            Failure::Told(ChallengeFailure::Unreachable {
                target: domain.to_owned(),
                reason: format!("{domain} does not resolve: {reason}"),
            })
        };
        let found = self
            .resolver
            .lookup_ip(format!("{domain}."))
            .await
            .map_err(|e| unresolvable(e.to_string()))?;
        let addresses: Vec<IpAddr> = found.iter().collect();
        if addresses.is_empty() {
            return Err(unresolvable("no A or AAAA record".into()));
        }
        Ok(addresses)
    }

    fn permit(&self, name: &str, address: IpAddr) -> std::result::Result<(), Failure> {
        if self.allow_private || is_public(address) {
            Ok(())
        } else {
            Err(Failure::Told(ChallengeFailure::ForbiddenTarget {
                domain: name.to_owned(),
                address: address.to_string(),
            }))
        }
    }

    /// A connection to the first address that answers, checked again on the connected
    /// peer before anything is sent.
    async fn connect(
        &self,
        name: &str,
        addresses: &[IpAddr],
        port: u16,
    ) -> std::result::Result<TcpStream, Failure> {
        let mut last = String::from("no address");
        for address in addresses {
            match TcpStream::connect(SocketAddr::new(*address, port)).await {
                Ok(stream) => {
                    let peer = stream
                        .peer_addr()
                        .map_err(|e| Failure::Transport(e.to_string()))?;
                    self.permit(name, peer.ip())?;
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                    return Ok(stream);
                }
                Err(e) => last = format!("{address}:{port}: {e}"),
            }
        }
        Err(Failure::Transport(last))
    }
}

/// One HTTP/1.1 request on `io`; the connection lives as long as the response's body.
async fn exchange<S>(
    io: S,
    request: Request<Empty<Bytes>>,
) -> std::result::Result<Response<Incoming>, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::Transport(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "challenge connection ended");
        }
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| Failure::Transport(e.to_string()))
}
