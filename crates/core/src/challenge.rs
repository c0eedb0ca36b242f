//! Domain verification: the token an organization publishes to prove it controls a domain,
//! what it must publish (a DNS TXT record or an HTTP file), the [`DomainChallenge`] port
//! that looks for it, and the typed failures that tell the user what to do.
//!
//! The token travels in `org.domain.verification.added` (`validationCode`, in the shape of
//! ZITADEL's `crypto.CryptoValue`, and `expiresAt`). It is stored readable, not encrypted:
//! it proves control only because it is published at a place only the domain's owner can
//! write to, and publishing it makes it public anyway.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::event::{LegacyEvent, ORG_AGGREGATE, StoredEvent};
use crate::model::{ValidationType, same_domain};
use crate::value::DomainName;

/// The default prefix, as ZITADEL: `_zitadel-challenge.<domain>` and
/// `/.well-known/zitadel-challenge/<token>`.
pub const DEFAULT_PREFIX: &str = "zitadel";
/// How long a generated token can be verified.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// `validationCode.algorithm` of tokens tenancy generates (readable, see the module docs).
pub const TOKEN_ALGORITHM: &str = "tenancy-plain";

/// Where challenges are published and how long tokens live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeSettings {
    /// `_<prefix>-challenge.<domain>` and `/.well-known/<prefix>-challenge/<token>`.
    pub prefix: String,
    /// How long a generated token can be verified ([`DEFAULT_LIFETIME`]: one hour).
    pub lifetime: Duration,
}

impl Default for ChallengeSettings {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            lifetime: DEFAULT_LIFETIME,
        }
    }
}

impl ChallengeSettings {
    /// A prefix becomes part of a DNS label and a URL path: the same rules as a label.
    pub fn validate(&self) -> Result<()> {
        let prefix = &self.prefix;
        let ok = !prefix.is_empty()
            && prefix.len() <= 40
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !prefix.starts_with('-');
        if !ok {
            return Err(Error::invalid(
                "challenge prefix",
                format!("{prefix:?} must be 1 to 40 lower-case letters, digits or '-'"),
            ));
        }
        if self.lifetime.is_zero() {
            return Err(Error::invalid("challenge lifetime", "must be positive"));
        }
        Ok(())
    }

    /// The TXT record's name for `domain`.
    pub fn dns_name(&self, domain: &DomainName) -> String {
        format!("_{}-challenge.{domain}", self.prefix)
    }

    /// The path of the HTTP file for `token`.
    pub fn http_path(&self, token: &str) -> String {
        format!("/.well-known/{}-challenge/{token}", self.prefix)
    }
}

/// What a verification looks for: `token`, published for `domain` the way
/// `validation_type` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The organization domain to verify.
    pub domain: DomainName,
    /// Where the token is looked for: a DNS TXT record or an HTTP file.
    pub validation_type: ValidationType,
    /// The token that must be published.
    pub token: String,
}

/// What the organization must publish, as returned when a token is generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Publication {
    /// A TXT record named `name` whose value is the token.
    DnsTxt {
        /// The record's name (`_zitadel-challenge.<domain>` with the default prefix).
        name: String,
        /// The record's value: the token.
        value: String,
    },
    /// A file at `url` whose content is the token.
    HttpFile {
        /// Where the file must be served (`https://<domain>/.well-known/...`).
        url: String,
        /// The file's whole content: the token.
        content: String,
    },
}

impl Challenge {
    /// The record or file the organization must publish, under `settings`' prefix.
    pub fn publication(&self, settings: &ChallengeSettings) -> Publication {
        match self.validation_type {
            ValidationType::Dns => Publication::DnsTxt {
                name: settings.dns_name(&self.domain),
                value: self.token.clone(),
            },
            ValidationType::Http => Publication::HttpFile {
                url: format!("https://{}{}", self.domain, settings.http_path(&self.token)),
                content: self.token.clone(),
            },
        }
    }
}

/// Why a verification did not succeed; each message says what the user must do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeFailure {
    #[error(
        "no validation was generated for {domain}: generate one, publish the token, then verify"
    )]
    /// No validation token was generated for the domain since it was added.
    NotGenerated {
        /// The domain being verified.
        domain: String,
    },
    #[error(
        "the pending validation of {domain} was generated by ZITADEL and is encrypted with its keys: generate a new one here, publish it, then verify"
    )]
    /// The pending token was generated by ZITADEL, encrypted with keys tenancy does not hold.
    Unreadable {
        /// The domain being verified.
        domain: String,
    },
    /// The token's lifetime is over.
    #[error(
        "the validation token of {domain} expired at {expired_at}: generate a new one and publish it"
    )]
    Expired {
        /// The domain being verified.
        domain: String,
        /// When the token stopped being accepted.
        expired_at: OffsetDateTime,
    },
    #[error(
        "no TXT record at {name}: publish a TXT record there whose value is the token, wait for DNS to propagate, then verify"
    )]
    /// No TXT record at the challenge's name.
    RecordNotFound {
        /// The name looked up.
        name: String,
    },
    #[error(
        "{url} answered HTTP {status}: serve the token as the file's whole content at that address, then verify"
    )]
    /// The challenge file was not served (a status other than 200).
    FileNotFound {
        /// The address fetched.
        url: String,
        /// The HTTP status it answered.
        status: u16,
    },
    #[error(
        "{location} holds {found}, not the token: publish exactly the token of the last validation generated, then verify"
    )]
    /// Something other than the token is published.
    Mismatch {
        /// The record name or URL looked at.
        location: String,
        /// What was there instead (shortened).
        found: String,
    },
    #[error("{url} sent more than {limit} bytes: the file must contain only the token")]
    /// The challenge file is larger than a token can be.
    TooLarge {
        /// The address fetched.
        url: String,
        /// The most bytes read.
        limit: usize,
    },
    #[error(
        "could not reach {target}: {reason}; check that the domain resolves and its server answers, then verify again"
    )]
    /// The DNS server or the web server could not be reached.
    Unreachable {
        /// The name or address contacted.
        target: String,
        /// Why the connection or lookup failed.
        reason: String,
    },
    #[error(
        "{target} did not answer within {after_ms} ms: check that its server answers, then verify again"
    )]
    /// No answer in time.
    Timeout {
        /// The name or address contacted.
        target: String,
        /// How long it waited, in milliseconds.
        after_ms: u128,
    },
    #[error(
        "{domain} resolves to {address}, a loopback, private or link-local address: verification only contacts public addresses"
    )]
    /// The domain resolves to an address verification never contacts (SSRF guard).
    ForbiddenTarget {
        /// The domain being verified.
        domain: String,
        /// The address it resolved to.
        address: String,
    },
    /// Too many failed verifications of the domain recently; nothing was contacted.
    #[error(
        "the verification of {domain} failed {failures} times within {window_secs} s: verify again in {retry_in_secs} s, once the token is published"
    )]
    TooSoon {
        /// The domain being verified.
        domain: String,
        /// Failed verifications within the window.
        failures: usize,
        /// The window's length.
        window_secs: u64,
        /// When the next verification is allowed.
        retry_in_secs: u64,
    },
}

/// Failed verifications of one domain allowed per window: once as many failed within
/// the last [`VERIFY_WINDOW`], the domain is not checked again (no request to its servers,
/// no `org.domain.verification.failed` event) until the oldest of them leaves the window.
/// Bounds what a caller can make tenancy send to one target and write to the store,
/// while "verify, publish, verify again" still works at once.
pub const VERIFY_FAILURES_PER_WINDOW: usize = 3;
/// See [`VERIFY_FAILURES_PER_WINDOW`].
pub const VERIFY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// When the failed verifications of `domain` since its latest token were recorded (a new
/// token starts afresh), oldest first.
pub fn failed_verifications(events: &[StoredEvent], domain: &DomainName) -> Vec<OffsetDateTime> {
    let mut failures = Vec::new();
    for event in events.iter().filter(|e| e.aggregate_type == ORG_AGGREGATE) {
        let Ok(decoded) = LegacyEvent::decode(&event.event_type, event.payload.as_ref()) else {
            continue;
        };
        match decoded {
            LegacyEvent::OrgDomainVerificationAdded { domain: d, .. }
                if same_domain(&d, domain.as_str()) =>
            {
                failures.clear();
            }
            LegacyEvent::OrgDomainVerificationFailed { domain: d }
                if same_domain(&d, domain.as_str()) =>
            {
                failures.push(event.created_at);
            }
            _ => {}
        }
    }
    failures
}

/// Looks for a published challenge (DNS or HTTP). Adapters: `tenancy-challenge`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DomainChallenge: Send + Sync {
    /// `Ok` when `challenge.token` is published for `challenge.domain`.
    async fn check(&self, challenge: &Challenge) -> std::result::Result<(), ChallengeFailure>;
}

/// Produces validation tokens: unguessable and safe in a DNS TXT value and a URL path.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TokenGenerator: Send + Sync {
    /// A new token; an error when the system has no randomness to give.
    fn token(&self) -> Result<String>;
}

/// 32 characters of RFC 4648 base32 (lower case) from the operating system's generator:
/// 160 bits.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsTokens;

impl TokenGenerator for OsTokens {
    fn token(&self) -> Result<String> {
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::internal(format!("no randomness for a token: {e}")))?;
        // 32 possible values per character, 256 per byte: the low five bits are unbiased.
        Ok(bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect())
    }
}

/// `validationCode` as ZITADEL's `crypto.CryptoValue` shapes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeValue {
    #[serde(default)]
    crypto_type: i64,
    #[serde(default)]
    algorithm: String,
    #[serde(default, rename = "keyID", alias = "keyId")]
    key_id: String,
    #[serde(default)]
    crypted: String,
}

/// The `validationCode` of a token tenancy generated.
pub fn encode_token(token: &str) -> Value {
    let code = CodeValue {
        crypto_type: 0,
        algorithm: TOKEN_ALGORITHM.to_owned(),
        key_id: String::new(),
        crypted: base64::engine::general_purpose::STANDARD.encode(token),
    };
    serde_json::to_value(code).unwrap_or(Value::Null)
}

/// The token of a `validationCode` tenancy wrote; `None` for anything else (ZITADEL's
/// encrypted values).
pub fn decode_token(code: &Value) -> Option<String> {
    let code: CodeValue = serde_json::from_value(code.clone()).ok()?;
    if code.algorithm != TOKEN_ALGORITHM {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(code.crypted)
        .ok()?;
    String::from_utf8(bytes).ok().filter(|t| !t.is_empty())
}

/// The validation of one org domain that is waiting to be verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingValidation {
    /// Where the token is to be published.
    pub validation_type: ValidationType,
    /// `None` when the token cannot be read (generated by ZITADEL).
    pub token: Option<String>,
    /// When the token stops being accepted; `None` for tokens that do not expire.
    pub expires_at: Option<OffsetDateTime>,
}

/// What an org aggregate's events say about `domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainValidationState {
    /// The org has no such domain (never added, removed, or the org is removed).
    Absent,
    /// Verified: nothing to do.
    Verified,
    /// Added, not verified; the last validation generated since it was added, if any.
    Unverified(Option<PendingValidation>),
}

/// Folds one org aggregate's events (by sequence) for `domain`.
pub fn domain_validation_state(
    events: &[StoredEvent],
    domain: &DomainName,
) -> Result<DomainValidationState> {
    use DomainValidationState as S;
    let mut state = S::Absent;
    for event in events.iter().filter(|e| e.aggregate_type == ORG_AGGREGATE) {
        let decoded = LegacyEvent::decode(&event.event_type, event.payload.as_ref())
            .map_err(|e| Error::internal_with("decoding an org event", e))?;
        let same = |d: &str| same_domain(d, domain.as_str());
        state = match decoded {
            LegacyEvent::OrgRemoved => S::Absent,
            LegacyEvent::OrgDomainAdded { domain } if same(&domain) => S::Unverified(None),
            LegacyEvent::OrgDomainRemoved { domain } if same(&domain) => S::Absent,
            LegacyEvent::OrgDomainVerified { domain } if same(&domain) => S::Verified,
            LegacyEvent::OrgDomainVerificationAdded {
                domain,
                validation_type,
                validation_code,
                expires_at,
            } if same(&domain) && matches!(state, S::Unverified(_)) => {
                S::Unverified(Some(PendingValidation {
                    validation_type,
                    token: validation_code.as_ref().and_then(decode_token),
                    expires_at,
                }))
            }
            _ => state,
        };
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_and_dns_safe() {
        let a = OsTokens.token().unwrap();
        let b = OsTokens.token().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn a_token_round_trips_and_zitadel_codes_are_unreadable() {
        assert_eq!(decode_token(&encode_token("abc")).as_deref(), Some("abc"));
        let zitadel = serde_json::json!({"cryptoType": 0, "algorithm": "aes", "keyID": "k", "crypted": "eHl6"});
        assert_eq!(decode_token(&zitadel), None);
        assert_eq!(decode_token(&serde_json::json!("x")), None);
    }

    #[test]
    fn publications_name_the_places_zitadel_uses() {
        let settings = ChallengeSettings::default();
        let challenge = |validation_type| Challenge {
            domain: DomainName::parse("acme.example").unwrap(),
            validation_type,
            token: "tok".into(),
        };
        assert_eq!(
            challenge(ValidationType::Dns).publication(&settings),
            Publication::DnsTxt {
                name: "_zitadel-challenge.acme.example".into(),
                value: "tok".into()
            }
        );
        assert_eq!(
            challenge(ValidationType::Http).publication(&settings),
            Publication::HttpFile {
                url: "https://acme.example/.well-known/zitadel-challenge/tok".into(),
                content: "tok".into()
            }
        );
    }

    #[test]
    fn prefixes_must_fit_a_label() {
        for bad in ["", "Zitadel", "a.b", "-x", "a/b"] {
            let settings = ChallengeSettings {
                prefix: bad.into(),
                ..ChallengeSettings::default()
            };
            assert!(settings.validate().is_err(), "{bad:?}");
        }
        assert!(ChallengeSettings::default().validate().is_ok());
    }
}
