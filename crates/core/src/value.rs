//! Value objects that validate on construction: a value of these types is always valid.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest domain name accepted: a DNS name has at most 253 characters in text form
/// (255 octets on the wire), below the schema's `length(domain) BETWEEN 1 AND 255`.
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest DNS label.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest instance or organization name.
pub const MAX_NAME_LEN: usize = 200;

/// A host name: trimmed, lower-cased, 1..=253 characters, dot-separated labels of ASCII
/// letters, digits and hyphens (no empty label, no leading or trailing hyphen, at most 63
/// characters each). Punycode (`xn--`) labels are plain ASCII and pass like any other.
///
/// A name that a URL parser reads as an IP address is refused: the WHATWG URL standard
/// (which reqwest, browsers and most proxies follow) takes a host whose last label is all
/// digits or `0x` hex as IPv4 (`127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`, `0`),
/// so such a "domain" would address a machine, not a name. No top-level domain is numeric.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    /// Validates a domain that is to be added (see the type's rules); InvalidArgument says which rule broke.
    pub fn parse(input: &str) -> Result<Self> {
        let domain = Self::parse_stored(input)?;
        if let Some(last) = domain.0.rsplit('.').next()
            && reads_as_ipv4_number(last)
        {
            return Err(Error::invalid(
                "domain",
                format!(
                    "{:?} ends in the numeric label {last:?}: URL parsers read it as an IP address, not a domain name",
                    domain.0
                ),
            ));
        }
        Ok(domain)
    }

    /// A domain that is stored already: the syntax of [`DomainName::parse`] without the
    /// rule against IP-shaped names, so a row written before that rule can still be named
    /// (to remove it). Never use it for a domain that is added.
    pub fn parse_stored(input: &str) -> Result<Self> {
        let domain = input.trim().to_ascii_lowercase();
        let invalid = |reason: String| Error::invalid("domain", reason);
        if domain.is_empty() {
            return Err(invalid("must not be empty".into()));
        }
        if domain.len() > MAX_DOMAIN_LEN {
            return Err(invalid(format!(
                "is {} characters long, at most {MAX_DOMAIN_LEN} are allowed",
                domain.chars().count()
            )));
        }
        for label in domain.split('.') {
            if label.is_empty() {
                return Err(invalid(format!("{domain:?} has an empty label")));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(invalid(format!(
                    "label {label:?} is longer than {MAX_LABEL_LEN} characters"
                )));
            }
            if let Some(bad) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            {
                return Err(invalid(format!(
                    "label {label:?} contains {bad:?}; only ASCII letters, digits and '-' are allowed (use punycode for other characters)"
                )));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid(format!(
                    "label {label:?} must not start or end with '-'"
                )));
            }
        }
        Ok(Self(domain))
    }

    /// A domain an organization or an instance claims: [`DomainName::parse`], and a name
    /// under a public suffix, so at least two labels and not `localhost` or a name under
    /// `.localhost` (RFC 6761: they always mean this machine).
    pub fn parse_claimable(input: &str) -> Result<Self> {
        let domain = Self::parse(input)?;
        let name = domain.as_str();
        if name == "localhost" || name.ends_with(".localhost") {
            return Err(Error::invalid(
                "domain",
                format!("{name:?} is a loopback name (RFC 6761), not a domain of its own"),
            ));
        }
        if !name.contains('.') {
            return Err(Error::invalid(
                "domain",
                format!(
                    "{name:?} has a single label: a claimable domain has at least two (name.tld)"
                ),
            ));
        }
        Ok(domain)
    }

    /// The domain of an HTTP `Host` header: without a `:port` and a trailing dot.
    /// `[::1]:8080` and other IP literals in brackets are not domains.
    pub fn from_host(host: &str) -> Result<Self> {
        let host = host.trim();
        let host = match host.rsplit_once(':') {
            Some((name, port))
                if !name.contains(':')
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                name
            }
            _ => host,
        };
        Self::parse(host.strip_suffix('.').unwrap_or(host))
    }

    /// The normalized (lower-cased) name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// WHATWG URL's "ends in a number": a label of digits, or `0x` followed by hex digits
/// (octal `0177` is digits too).
fn reads_as_ipv4_number(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || (!label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DomainName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<DomainName> for String {
    fn from(value: DomainName) -> Self {
        value.0
    }
}

/// The name of an instance or organization: trimmed, non-empty, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Trims and validates a name; InvalidArgument when empty, too long or containing NUL.
    pub fn parse(input: &str) -> Result<Self> {
        let name = input.trim();
        if name.is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if name.contains('\0') {
            return Err(Error::invalid(
                "name",
                "contains the NUL character (U+0000), which cannot be stored",
            ));
        }
        let len = name.chars().count();
        if len > MAX_NAME_LEN {
            return Err(Error::invalid(
                "name",
                format!("is {len} characters long, at most {MAX_NAME_LEN} are allowed"),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The trimmed name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Name {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<Name> for String {
    fn from(value: Name) -> Self {
        value.0
    }
}

/// A well-formed BCP-47 language tag (`de`, `en-US`, `zh-Hant-TW`), checked by `oxilangtag`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LanguageTag(String);

impl LanguageTag {
    /// Validates a BCP-47 tag (trimmed); InvalidArgument when malformed.
    pub fn parse(input: &str) -> Result<Self> {
        let tag = input.trim();
        oxilangtag::LanguageTag::parse(tag)
            .map_err(|e| Error::invalid("language", format!("{tag:?} is not a BCP-47 tag: {e}")))?;
        Ok(Self(tag.to_owned()))
    }

    /// The tag as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LanguageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for LanguageTag {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<LanguageTag> for String {
    fn from(value: LanguageTag) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn host_headers_lose_port_and_trailing_dot() {
        for (host, domain) in [
            ("Login.ACME.example", "login.acme.example"),
            ("login.acme.example:8080", "login.acme.example"),
            ("login.acme.example.", "login.acme.example"),
            (" login.acme.example.:443 ", "login.acme.example"),
        ] {
            assert_eq!(DomainName::from_host(host).unwrap().as_str(), domain);
        }
        for bad in ["", ":80", "[::1]:8080", "a b", "login.acme.example:http"] {
            assert!(DomainName::from_host(bad).is_err(), "{bad:?}");
        }
    }

    fn reason(result: Result<DomainName>) -> String {
        match result {
            Err(Error::InvalidArgument { field, reason }) => {
                assert_eq!(field, "domain");
                reason
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn domains_are_trimmed_and_lower_cased() {
        let d = DomainName::parse("  Login.ACME.example ").unwrap();
        assert_eq!(d.as_str(), "login.acme.example");
    }

    #[test]
    fn punycode_labels_are_allowed() {
        assert!(DomainName::parse("xn--bcher-kva.example").is_ok());
        assert!(DomainName::parse("localhost").is_ok());
        assert!(DomainName::parse("a-b.c0").is_ok());
        assert!(
            DomainName::parse("0x.example").is_ok(),
            "only the last label counts"
        );
    }

    #[test]
    fn each_rule_is_named() {
        assert!(reason(DomainName::parse("   ")).contains("empty"));
        assert!(reason(DomainName::parse("a..b")).contains("empty label"));
        assert!(reason(DomainName::parse(".a")).contains("empty label"));
        assert!(reason(DomainName::parse("a.")).contains("empty label"));
        assert!(reason(DomainName::parse("-a.b")).contains("start or end"));
        assert!(reason(DomainName::parse("a-.b")).contains("start or end"));
        assert!(reason(DomainName::parse("bü.example")).contains("only ASCII"));
        assert!(reason(DomainName::parse("a_b.example")).contains("only ASCII"));
        assert!(reason(DomainName::parse("a b.example")).contains("only ASCII"));
        assert!(reason(DomainName::parse(&"a".repeat(64))).contains("longer than 63"));
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
        ]
        .join(".");
        assert_eq!(long.len(), 255);
        assert!(reason(DomainName::parse(&long)).contains("at most 253"));
        assert!(DomainName::parse(&long[2..]).is_ok());
    }

    /// H1 of the security review: every spelling a URL parser turns into an IPv4 address.
    #[test]
    fn names_that_url_parsers_read_as_ip_addresses_are_refused() {
        for ip_shaped in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "2130706433",
            "0x7f000001",
            "0X7F000001",
            "0177.0.0.1",
            "0",
            "169.254.43518",
            "167772161",
            "10.0.0.0x1",
            "a.b.0x",
            "example.123",
        ] {
            assert!(
                reason(DomainName::parse(ip_shaped)).contains("IP address"),
                "{ip_shaped}"
            );
            assert!(DomainName::from_host(&format!("{ip_shaped}:443")).is_err());
        }
        assert!(DomainName::parse_stored("127.0.0.1").is_ok(), "removable");
    }

    /// L9: what an organization or an instance may claim.
    #[test]
    fn claimable_domains_have_a_suffix_and_are_not_loopback_names() {
        for bad in [
            "localhost",
            "LocalHost.",
            "app.localhost",
            "com",
            "intranet",
        ] {
            assert!(DomainName::parse_claimable(bad).is_err(), "{bad}");
        }
        assert!(DomainName::parse_claimable("acme.example").is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse(" ACME ").unwrap().as_str(), "ACME");
        assert!(Name::parse(" ").is_err());
        assert!(Name::parse("a\0b").is_err(), "PostgreSQL cannot store NUL");
        assert!(Name::parse(&"x".repeat(200)).is_ok());
        assert!(Name::parse(&"x".repeat(201)).is_err());
        assert!(
            Name::parse(&"ü".repeat(200)).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn language_tags_are_bcp47() {
        assert!(LanguageTag::parse("de").is_ok());
        assert!(LanguageTag::parse("en-US").is_ok());
        assert!(LanguageTag::parse("zh-Hant-TW").is_ok());
        assert!(LanguageTag::parse("").is_err());
        assert!(LanguageTag::parse("en_US").is_err());
        assert!(LanguageTag::parse("toolonglanguage").is_err());
    }

    proptest! {
        #[test]
        fn domain_parsing_never_panics_and_accepts_only_valid(input in ".{0,300}") {
            if let Ok(d) = DomainName::parse(&input) {
                let s = d.as_str();
                prop_assert!(!s.is_empty() && s.len() <= 253);
                prop_assert!(s.split('.').all(|l| !l.is_empty() && l.len() <= 63
                    && !l.starts_with('-') && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')));
                prop_assert_eq!(DomainName::parse(s).unwrap(), d.clone());
            }
        }

        #[test]
        fn valid_shaped_domains_are_accepted(labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", 1..5)) {
            let input = format!("{}.example", labels.join("."));
            prop_assert!(DomainName::parse(&input).is_ok());
        }
    }
}
