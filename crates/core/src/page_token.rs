//! Page tokens for keyset paging: the position where a page ended ([`Keyset`]), opaque
//! to clients and tamper-evident. A token is bound to the list it came from (criteria,
//! sort and order, as a fingerprint the caller gives): an edited token, or one replayed on
//! another list, is refused with `InvalidArgument { field: "page_token" }`.
//!
//! Format: `base64url(json(keyset)) "." base64url(HMAC-SHA256(key, fingerprint 0x00
//! payload))`. Not encrypted: the position is a value of the last row the caller already
//! received.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::query::Keyset;

/// Longest token accepted (a position is a sort value of at most a few hundred bytes).
pub const MAX_TOKEN_LEN: usize = 2048;

/// Signs and checks page tokens with one server-side key.
#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTokens").finish_non_exhaustive()
    }
}

fn invalid(reason: &str) -> Error {
    Error::invalid("page_token", reason)
}

impl PageTokens {
    /// `key`: at least 32 bytes of secret (a restart with another key invalidates the
    /// tokens handed out, which only means clients start their walk again).
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self> {
        let key = key.into();
        if key.len() < 32 {
            return Err(Error::invalid("page token key", "needs at least 32 bytes"));
        }
        Ok(Self { key })
    }

    fn mac(&self, fingerprint: &str, payload: &str) -> Result<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .map_err(|_| Error::internal("page token key rejected"))?;
        mac.update(fingerprint.as_bytes());
        mac.update(&[0]);
        mac.update(payload.as_bytes());
        Ok(mac)
    }

    /// The token for `position` in the list identified by `fingerprint`.
    pub fn encode(&self, position: &Keyset, fingerprint: &str) -> Result<String> {
        let json = serde_json::to_vec(position)
            .map_err(|e| Error::internal_with("encoding a page token", e))?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = self.mac(fingerprint, &payload)?.finalize().into_bytes();
        Ok(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// The position of a token this server handed out for the same list.
    pub fn decode(&self, token: &str, fingerprint: &str) -> Result<Keyset> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("is too long"));
        }
        let (payload, tag) = token
            .split_once('.')
            .ok_or_else(|| invalid("is not a page token of this server"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| invalid("is not a page token of this server"))?;
        // Constant-time comparison.
        self.mac(fingerprint, payload)?
            .verify_slice(&tag)
            .map_err(|_| invalid("was altered or belongs to another list"))?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| invalid("is not a page token of this server"))?;
        serde_json::from_slice(&json).map_err(|_| invalid("is not a page token of this server"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::KeyValue;

    fn tokens() -> PageTokens {
        PageTokens::new([7u8; 32]).unwrap()
    }

    fn position() -> Keyset {
        Keyset {
            value: KeyValue::Text("Acme".into()),
            id: KeyValue::Text("o1".into()),
        }
    }

    #[test]
    fn a_token_round_trips_on_its_own_list_only() {
        let token = tokens().encode(&position(), "orgs|i1|name|asc").unwrap();
        assert_eq!(
            tokens().decode(&token, "orgs|i1|name|asc").unwrap(),
            position()
        );
        let other = tokens().decode(&token, "orgs|i2|name|asc");
        assert!(matches!(
            other,
            Err(Error::InvalidArgument {
                field: "page_token",
                ..
            })
        ));
        let other_key = PageTokens::new([8u8; 32])
            .unwrap()
            .decode(&token, "orgs|i1|name|asc");
        assert!(other_key.is_err());
    }

    #[test]
    fn altered_and_garbage_tokens_are_refused() {
        let token = tokens().encode(&position(), "f").unwrap();
        let (payload, tag) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Keyset {
                value: KeyValue::Text("Zzz".into()),
                id: KeyValue::Text("o9".into()),
            })
            .unwrap(),
        );
        for bad in [
            format!("{forged}.{tag}"),
            format!("{payload}.{}", &tag[1..]),
            payload.to_owned(),
            String::new(),
            "..".into(),
            "a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            let r = tokens().decode(&bad, "f");
            assert!(
                matches!(
                    r,
                    Err(Error::InvalidArgument {
                        field: "page_token",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(PageTokens::new(vec![1u8; 31]).is_err());
    }
}
