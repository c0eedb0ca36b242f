//! Who calls. Every request carries `authorization: Bearer <token>`; the configuration
//! holds only SHA-256 digests of the tokens (tokens are 160 random bits, so a fast hash is
//! enough: there is nothing to brute-force). A system token may act on any instance; an
//! instance token is bound to one.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::http::{HeaderMap, Uri, Version, header};
use sha2::{Digest, Sha256};
use tenancy_core::challenge::{OsTokens, TokenGenerator};
use tenancy_core::id::InstanceId;
use tenancy_core::ports::ConsistencyToken;
use tenancy_core::{Error, Result};

/// The header a system token names an instance with (the org service has no
/// `instance_id` field, as in ZITADEL).
pub const INSTANCE_HEADER: &str = "x-tenancy-instance-id";

/// Read-your-writes: every successful write answers with this header (gRPC: response
/// metadata) when the database has read replicas; a read that sends it back sees that
/// write, whichever replica serves it.
pub const CONSISTENCY_HEADER: &str = "x-tenancy-consistency";

/// One configured token: its name (the `creator` of the events it writes), the hex
/// SHA-256 of the token, and the instance it is bound to (none: a system token).
///
/// Unknown keys are refused: a misspelled `instance_id` would otherwise make an instance
/// token a system token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who the token stands for; the `creator` of the events its requests write.
    pub name: String,
    /// The hex SHA-256 of the token (the token itself is never configured).
    pub sha256: String,
    /// The only instance the token may act on; `None`: a system token (any instance).
    #[serde(default)]
    pub instance_id: Option<String>,
}

/// What a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A system token: may act on any instance (named by the Host or the instance header).
    System {
        /// The token's name.
        name: String,
    },
    /// An instance token: may act on its instance only.
    Instance {
        /// The token's name.
        name: String,
        /// The instance it is bound to.
        instance_id: InstanceId,
    },
}

impl Principal {
    /// The token's name.
    pub fn name(&self) -> &str {
        match self {
            Self::System { name } | Self::Instance { name, .. } => name,
        }
    }
}

/// The caller of one request, put into the request's extensions by the authentication
/// layer: the principal, the Host (`Host` header, or `:authority` over HTTP/2) and the
/// instance header.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who the token stands for.
    pub principal: Principal,
    /// The request's host (`Host`, or `:authority` over HTTP/2), if it sent one.
    pub host: Option<String>,
    /// The instance header, which system tokens may use instead of a host.
    pub instance_header: Option<String>,
    /// The [`CONSISTENCY_HEADER`] the request sent.
    pub consistency: Option<ConsistencyToken>,
    /// The token of the write this request made, for the response's header (shared by
    /// the clones of the caller a request carries).
    pub written: Arc<OnceLock<ConsistencyToken>>,
}

impl Caller {
    /// Records the token of this request's write.
    pub fn wrote(&self, token: ConsistencyToken) {
        let _ = self.written.set(token);
    }
}

/// The configured tokens, by digest.
#[derive(Debug, Clone, Default)]
pub struct ApiTokens {
    by_digest: HashMap<[u8; 32], Principal>,
}

impl ApiTokens {
    /// InvalidArgument for a digest that is not 64 hex digits, an empty name or an
    /// empty instance id; duplicates are refused too (one digest, one principal).
    pub fn new(entries: &[TokenEntry]) -> Result<Self> {
        let mut by_digest = HashMap::new();
        for entry in entries {
            if entry.name.trim().is_empty() {
                return Err(Error::invalid("api.tokens.name", "must not be empty"));
            }
            let digest = parse_digest(&entry.sha256).ok_or_else(|| {
                Error::invalid(
                    "api.tokens.sha256",
                    format!("token {:?}: expected 64 hex digits", entry.name),
                )
            })?;
            let principal = match &entry.instance_id {
                None => Principal::System {
                    name: entry.name.clone(),
                },
                Some(id) => Principal::Instance {
                    name: entry.name.clone(),
                    instance_id: InstanceId::new(id.clone())?,
                },
            };
            if by_digest.insert(digest, principal).is_some() {
                return Err(Error::invalid(
                    "api.tokens.sha256",
                    format!("token {:?}: the same token is configured twice", entry.name),
                ));
            }
        }
        Ok(Self { by_digest })
    }

    /// Whether no token is configured (the API then refuses every request).
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The principal of a bearer token, if it is configured.
    pub fn principal(&self, token: &str) -> Option<&Principal> {
        self.by_digest.get(&digest(token))
    }

    /// The caller of a request with these headers, or why not (UNAUTHENTICATED); `host`
    /// is the request's host ([`request_host`]).
    pub fn caller(
        &self,
        headers: &HeaderMap,
        host: Option<String>,
    ) -> std::result::Result<Caller, String> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or("missing authorization header (Bearer token)")?
            .to_str()
            .map_err(|_| "authorization header is not text")?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or("authorization header must be 'Bearer <token>'")?;
        let principal = self.principal(token).ok_or("unknown token")?.clone();
        let instance_header = headers
            .get(INSTANCE_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let consistency = headers
            .get(CONSISTENCY_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(|token| ConsistencyToken(token.to_owned()));
        Ok(Caller {
            principal,
            host,
            instance_header,
            consistency,
            written: Arc::default(),
        })
    }
}

/// The host a request addresses, or why the request is malformed (400): one value, and
/// one that could be a host (visible ASCII).
///
/// - HTTP/2: `:authority` (RFC 9113 §8.3.1); a `host` header that differs from it is refused,
///   since an intermediary may have checked one and the instance would come from the other.
/// - HTTP/1.1: a request target in absolute form names the host and the `Host` header is
///   ignored (RFC 9112 §3.2.2); otherwise exactly one `Host` header (RFC 9112 §3.2: none,
///   two, or an invalid one is 400).
pub fn request_host(
    version: Version,
    headers: &HeaderMap,
    uri: &Uri,
) -> std::result::Result<Option<String>, String> {
    let mut values = headers.get_all(header::HOST).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err("more than one Host header".into());
    }
    let host = match first {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or("invalid Host header: a host is visible ASCII (use punycode)")?,
        ),
    };
    match uri.authority().map(|a| a.as_str()) {
        Some(authority) => {
            if version == Version::HTTP_2
                && let Some(host) = host
                && !host.eq_ignore_ascii_case(authority)
            {
                return Err(format!(
                    "the host header ({host}) differs from :authority ({authority})"
                ));
            }
            Ok(Some(authority.to_owned()))
        }
        None if version == Version::HTTP_11 && host.is_none() => Err("missing Host header".into()),
        None => Ok(host.map(str::to_owned)),
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// The hex SHA-256 of a token, as the configuration stores it.
pub fn token_digest(token: &str) -> String {
    digest(token).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new token (160 random bits) and its digest.
pub fn new_token() -> Result<(String, String)> {
    let token = format!("tenancy_{}", OsTokens.token()?);
    let digest = token_digest(&token);
    Ok((token, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> ApiTokens {
        ApiTokens::new(&[
            TokenEntry {
                name: "ops".into(),
                sha256: token_digest("s3cret"),
                instance_id: None,
            },
            TokenEntry {
                name: "acme-admin".into(),
                sha256: token_digest("acme"),
                instance_id: Some("i1".into()),
            },
        ])
        .unwrap()
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h.insert(header::HOST, "login.acme.example:8080".parse().unwrap());
        h
    }

    fn host(headers: &HeaderMap) -> Option<String> {
        request_host(Version::HTTP_11, headers, &Uri::from_static("/x")).unwrap()
    }

    #[test]
    fn bearer_tokens_name_their_principal() {
        let h = headers("Bearer s3cret");
        let caller = tokens().caller(&h, host(&h)).unwrap();
        assert_eq!(caller.principal.name(), "ops");
        assert_eq!(caller.host.as_deref(), Some("login.acme.example:8080"));
        let caller = tokens().caller(&headers("bearer acme"), None).unwrap();
        assert!(
            matches!(caller.principal, Principal::Instance { ref instance_id, .. } if instance_id.as_str() == "i1")
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["Bearer nope", "Basic s3cret", "s3cret", "Bearer "] {
            assert!(tokens().caller(&headers(bad), None).is_err(), "{bad}");
        }
        assert!(tokens().caller(&HeaderMap::new(), None).is_err());
    }

    /// M1 of the security review.
    #[test]
    fn one_host_per_request_and_the_authority_wins() {
        let origin = Uri::from_static("/x");
        let absolute = Uri::from_static("http://b.example/x");
        let mut two = HeaderMap::new();
        two.append(header::HOST, "a.example".parse().unwrap());
        two.append(header::HOST, "b.example".parse().unwrap());
        assert!(request_host(Version::HTTP_11, &two, &origin).is_err());
        let mut one = HeaderMap::new();
        one.insert(header::HOST, "a.example".parse().unwrap());
        assert_eq!(
            request_host(Version::HTTP_11, &one, &absolute)
                .unwrap()
                .as_deref(),
            Some("b.example"),
            "absolute form: the target's host, Host ignored"
        );
        assert!(
            request_host(Version::HTTP_2, &one, &absolute).is_err(),
            "HTTP/2: host differs from :authority"
        );
        let mut same = HeaderMap::new();
        same.insert(header::HOST, "B.example".parse().unwrap());
        assert!(request_host(Version::HTTP_2, &same, &absolute).is_ok());
        assert!(request_host(Version::HTTP_11, &HeaderMap::new(), &origin).is_err());
        let mut bad = HeaderMap::new();
        bad.insert(
            header::HOST,
            axum::http::HeaderValue::from_bytes("lögin.example".as_bytes()).unwrap(),
        );
        assert!(request_host(Version::HTTP_11, &bad, &origin).is_err());
    }

    #[test]
    fn the_configuration_is_checked() {
        let entry = |sha256: &str| TokenEntry {
            name: "x".into(),
            sha256: sha256.into(),
            instance_id: None,
        };
        assert!(ApiTokens::new(&[entry("abc")]).is_err());
        assert!(ApiTokens::new(&[entry(&"g".repeat(64))]).is_err());
        let twice = [entry(&token_digest("t")), entry(&token_digest("t"))];
        assert!(ApiTokens::new(&twice).is_err());
        let (token, digest) = new_token().unwrap();
        let configured = ApiTokens::new(&[entry(&digest)]).unwrap();
        assert!(configured.principal(&token).is_some());
    }
}
