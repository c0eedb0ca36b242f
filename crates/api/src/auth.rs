//! Who calls. Every request carries `authorization: Bearer <token>`; the configuration
//! holds only SHA-256 digests of the tokens (tokens are 160 random bits, so a fast hash is
//! enough: there is nothing to brute-force). A system token may act on any instance; an
//! instance token is bound to one.

use std::collections::HashMap;

use axum::http::{HeaderMap, Uri, header};
use sha2::{Digest, Sha256};
use tenancy_core::challenge::{OsTokens, TokenGenerator};
use tenancy_core::id::InstanceId;
use tenancy_core::{Error, Result};

/// The header a system token names an instance with (the org service has no
/// `instance_id` field, as in ZITADEL).
pub const INSTANCE_HEADER: &str = "x-tenancy-instance-id";

/// One configured token: its name (the `creator` of the events it writes), the hex
/// SHA-256 of the token, and the instance it is bound to (none: a system token).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TokenEntry {
    pub name: String,
    pub sha256: String,
    #[serde(default)]
    pub instance_id: Option<String>,
}

/// What a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    System {
        name: String,
    },
    Instance {
        name: String,
        instance_id: InstanceId,
    },
}

impl Principal {
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
    pub principal: Principal,
    pub host: Option<String>,
    pub instance_header: Option<String>,
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

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The principal of a bearer token, if it is configured.
    pub fn principal(&self, token: &str) -> Option<&Principal> {
        self.by_digest.get(&digest(token))
    }

    /// The caller of a request with these headers, or why not (UNAUTHENTICATED).
    pub fn caller(&self, headers: &HeaderMap, uri: &Uri) -> std::result::Result<Caller, String> {
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
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| uri.authority().map(|a| a.as_str().to_owned()));
        let instance_header = headers
            .get(INSTANCE_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        Ok(Caller {
            principal,
            host,
            instance_header,
        })
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

    #[test]
    fn bearer_tokens_name_their_principal() {
        let uri = Uri::from_static("/x");
        let caller = tokens().caller(&headers("Bearer s3cret"), &uri).unwrap();
        assert_eq!(caller.principal.name(), "ops");
        assert_eq!(caller.host.as_deref(), Some("login.acme.example:8080"));
        let caller = tokens().caller(&headers("bearer acme"), &uri).unwrap();
        assert!(
            matches!(caller.principal, Principal::Instance { ref instance_id, .. } if instance_id.as_str() == "i1")
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let uri = Uri::from_static("/x");
        for bad in ["Bearer nope", "Basic s3cret", "s3cret", "Bearer "] {
            assert!(tokens().caller(&headers(bad), &uri).is_err(), "{bad}");
        }
        assert!(tokens().caller(&HeaderMap::new(), &uri).is_err());
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
