//! The legacy events of events.md as typed Rust: decoded from `(event_type, payload)` and
//! encoded back to the exact field names. Unknown payload fields are ignored; absent
//! optional fields take their documented defaults.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::model::ValidationType;

/// `aggregate_type` of instance events.
pub const INSTANCE_AGGREGATE: &str = "instance";
/// `aggregate_type` of organization events.
pub const ORG_AGGREGATE: &str = "org";

/// One legacy event concerning instances, organizations or their domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyEvent {
    /// `instance.added`: a new instance.
    InstanceAdded {
        /// The name (payload `name`).
        name: String,
    },
    /// `instance.changed`: the instance was renamed.
    InstanceChanged {
        /// The name (payload `name`).
        name: String,
    },
    /// `name` and `domains` a legacy writer may add are ignored.
    InstanceRemoved,
    /// `instance.default.org.set`: the organization new users land in.
    InstanceDefaultOrgSet {
        /// The organization (payload `orgId`).
        org_id: String,
    },
    /// `instance.iam.project.set`: the instance's IAM project.
    InstanceIamProjectSet {
        /// The project's id (payload `iamProjectId`).
        iam_project_id: String,
    },
    /// `instance.iam.console.set`: the management console's client and app.
    InstanceIamConsoleSet {
        /// The console's OIDC client id (payload `clientId`).
        client_id: String,
        /// The console's application id (payload `appId`).
        app_id: String,
    },
    /// `instance.default.language.set`: the instance's default language.
    InstanceDefaultLanguageSet {
        /// A BCP-47 tag (payload `language`).
        language: String,
    },
    /// `instance.domain.added`: a custom domain the instance is served under.
    InstanceDomainAdded {
        /// The domain (payload `domain`).
        domain: String,
        /// Whether ZITADEL generated the domain (payload `generated`, default false).
        generated: bool,
    },
    /// `instance.domain.primary.set`: the instance's primary custom domain.
    InstanceDomainPrimarySet {
        /// The domain (payload `domain`).
        domain: String,
    },
    /// `instance.domain.removed`: a custom domain removed.
    InstanceDomainRemoved {
        /// The domain (payload `domain`).
        domain: String,
    },
    /// `instance.trusted_domains.added`: a trusted domain.
    InstanceTrustedDomainAdded {
        /// The domain (payload `domain`).
        domain: String,
    },
    /// `instance.trusted_domains.removed`: a trusted domain removed.
    InstanceTrustedDomainRemoved {
        /// The domain (payload `domain`).
        domain: String,
    },
    /// `org.added`: a new organization (its aggregate id is the organization's id).
    OrgAdded {
        /// The name (payload `name`).
        name: String,
    },
    /// Absent or empty name: no change.
    OrgChanged {
        /// The new name (payload `name`).
        name: Option<String>,
    },
    /// `org.deactivated`: the organization's users can no longer sign in.
    OrgDeactivated,
    /// `org.reactivated`: the organization is active again.
    OrgReactivated,
    /// `org.removed`: the organization and its domains are removed.
    OrgRemoved,
    /// `org.domain.added`: an unverified domain of the organization.
    OrgDomainAdded {
        /// The domain (payload `domain`).
        domain: String,
    },
    /// `org.domain.verification.added`: a validation token was generated.
    OrgDomainVerificationAdded {
        /// The domain (payload `domain`).
        domain: String,
        /// DNS or HTTP (payload `validationType`: 2 or 1).
        validation_type: ValidationType,
        /// An encrypted value the projection ignores; kept so encoding round-trips.
        /// tenancy's own tokens are readable (see `challenge`).
        validation_code: Option<Value>,
        /// When the token stops being accepted (tenancy's events; ZITADEL's have none).
        expires_at: Option<OffsetDateTime>,
    },
    /// `org.domain.verification.failed`: a verification found no valid proof (no table changes).
    OrgDomainVerificationFailed {
        /// The domain (payload `domain`).
        domain: String,
    },
    /// `org.domain.verified`: the organization proved control of the domain.
    OrgDomainVerified {
        /// The domain (payload `domain`).
        domain: String,
    },
    /// `org.domain.primary.set`: the organization's primary domain.
    OrgDomainPrimarySet {
        /// The domain (payload `domain`).
        domain: String,
    },
    /// `org.domain.removed`: a domain of the organization removed.
    OrgDomainRemoved {
        /// The domain (payload `domain`).
        domain: String,
    },
}

/// The event that adds a domain to an instance: the only one whose effect (a custom
/// domain, unique across instances) can depend on another instance's projection.
pub const INSTANCE_DOMAIN_ADDED: &str = "instance.domain.added";

/// Every event type of the catalogue, as stored in `event_type`.
pub const EVENT_TYPES: &[&str] = &[
    "instance.added",
    "instance.changed",
    "instance.removed",
    "instance.default.org.set",
    "instance.iam.project.set",
    "instance.iam.console.set",
    "instance.default.language.set",
    "instance.domain.added",
    "instance.domain.primary.set",
    "instance.domain.removed",
    "instance.trusted_domains.added",
    "instance.trusted_domains.removed",
    "org.added",
    "org.changed",
    "org.deactivated",
    "org.reactivated",
    "org.removed",
    "org.domain.added",
    "org.domain.verification.added",
    "org.domain.verification.failed",
    "org.domain.verified",
    "org.domain.primary.set",
    "org.domain.removed",
];

/// Why an event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// An `event_type` outside the catalogue.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The event type needs a payload and has none.
    #[error("{event_type}: payload is missing")]
    MissingPayload {
        /// The event's type.
        event_type: String,
    },
    /// The payload does not have the event type's shape.
    #[error("{event_type}: malformed payload: {reason}")]
    Malformed {
        /// The event's type.
        event_type: String,
        /// Which field is wrong, and how.
        reason: String,
    },
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::invalid("payload", e.to_string())
    }
}

#[derive(Serialize, Deserialize)]
struct NamePayload {
    name: String,
}

#[derive(Serialize, Deserialize, Default)]
struct OptionalNamePayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrgIdPayload {
    org_id: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IamProjectPayload {
    iam_project_id: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsolePayload {
    client_id: String,
    app_id: String,
}

#[derive(Serialize, Deserialize)]
struct LanguagePayload {
    language: String,
}

#[derive(Serialize, Deserialize)]
struct DomainPayload {
    domain: String,
}

#[derive(Serialize, Deserialize)]
struct InstanceDomainAddedPayload {
    domain: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    generated: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationPayload {
    domain: String,
    #[serde(default)]
    validation_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    validation_code: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    expires_at: Option<OffsetDateTime>,
}

fn payload<T: DeserializeOwned>(
    event_type: &str,
    payload: Option<&Value>,
) -> Result<T, DecodeError> {
    let value = match payload {
        Some(v) if !v.is_null() => v,
        _ => {
            return Err(DecodeError::MissingPayload {
                event_type: event_type.to_owned(),
            });
        }
    };
    // The path names the offending field: `validationType: invalid type: string "1" ...`.
    serde_path_to_error::deserialize(value).map_err(|e| DecodeError::Malformed {
        event_type: event_type.to_owned(),
        reason: format!("{}: {}", e.path(), e.inner()),
    })
}

/// Payload of events whose body carries nothing we read: `null`, `{}` or an object with
/// ignored fields are all fine; anything else (a string, an array) is malformed.
fn empty(event_type: &str, payload: Option<&Value>) -> Result<(), DecodeError> {
    match payload {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(other) => Err(DecodeError::Malformed {
            event_type: event_type.to_owned(),
            reason: format!("expected an object, found {other}"),
        }),
    }
}

impl LegacyEvent {
    /// Decodes a stored event. Unknown fields are ignored; missing required fields, wrong
    /// types and invalid enum values are errors naming the event type and the field.
    pub fn decode(event_type: &str, body: Option<&Value>) -> Result<Self, DecodeError> {
        use LegacyEvent as E;
        let domain = |body| payload::<DomainPayload>(event_type, body).map(|p| p.domain);
        Ok(match event_type {
            "instance.added" => E::InstanceAdded {
                name: payload::<NamePayload>(event_type, body)?.name,
            },
            "instance.changed" => E::InstanceChanged {
                name: payload::<NamePayload>(event_type, body)?.name,
            },
            "instance.removed" => {
                empty(event_type, body)?;
                E::InstanceRemoved
            }
            "instance.default.org.set" => E::InstanceDefaultOrgSet {
                org_id: payload::<OrgIdPayload>(event_type, body)?.org_id,
            },
            "instance.iam.project.set" => E::InstanceIamProjectSet {
                iam_project_id: payload::<IamProjectPayload>(event_type, body)?.iam_project_id,
            },
            "instance.iam.console.set" => {
                let p = payload::<ConsolePayload>(event_type, body)?;
                E::InstanceIamConsoleSet {
                    client_id: p.client_id,
                    app_id: p.app_id,
                }
            }
            "instance.default.language.set" => E::InstanceDefaultLanguageSet {
                language: payload::<LanguagePayload>(event_type, body)?.language,
            },
            "instance.domain.added" => {
                let p = payload::<InstanceDomainAddedPayload>(event_type, body)?;
                E::InstanceDomainAdded {
                    domain: p.domain,
                    generated: p.generated,
                }
            }
            "instance.domain.primary.set" => E::InstanceDomainPrimarySet {
                domain: domain(body)?,
            },
            "instance.domain.removed" => E::InstanceDomainRemoved {
                domain: domain(body)?,
            },
            "instance.trusted_domains.added" => E::InstanceTrustedDomainAdded {
                domain: domain(body)?,
            },
            "instance.trusted_domains.removed" => E::InstanceTrustedDomainRemoved {
                domain: domain(body)?,
            },
            "org.added" => E::OrgAdded {
                name: payload::<NamePayload>(event_type, body)?.name,
            },
            "org.changed" => {
                empty(event_type, body)?;
                let p: OptionalNamePayload = match body {
                    Some(v) if !v.is_null() => payload(event_type, Some(v))?,
                    _ => OptionalNamePayload::default(),
                };
                E::OrgChanged {
                    name: p.name.filter(|n| !n.is_empty()),
                }
            }
            "org.deactivated" => {
                empty(event_type, body)?;
                E::OrgDeactivated
            }
            "org.reactivated" => {
                empty(event_type, body)?;
                E::OrgReactivated
            }
            "org.removed" => {
                empty(event_type, body)?;
                E::OrgRemoved
            }
            "org.domain.added" => E::OrgDomainAdded {
                domain: domain(body)?,
            },
            "org.domain.verification.added" => {
                let p = payload::<VerificationPayload>(event_type, body)?;
                let ordinal = p.validation_type.ok_or_else(|| DecodeError::Malformed {
                    event_type: event_type.to_owned(),
                    reason: "validationType is missing".into(),
                })?;
                let validation_type =
                    ValidationType::from_ordinal(ordinal).map_err(|_| DecodeError::Malformed {
                        event_type: event_type.to_owned(),
                        reason: format!("validationType {ordinal} is neither 1 (http) nor 2 (dns)"),
                    })?;
                E::OrgDomainVerificationAdded {
                    domain: p.domain,
                    validation_type,
                    validation_code: p.validation_code,
                    expires_at: p.expires_at,
                }
            }
            "org.domain.verification.failed" => E::OrgDomainVerificationFailed {
                domain: domain(body)?,
            },
            "org.domain.verified" => E::OrgDomainVerified {
                domain: domain(body)?,
            },
            "org.domain.primary.set" => E::OrgDomainPrimarySet {
                domain: domain(body)?,
            },
            "org.domain.removed" => E::OrgDomainRemoved {
                domain: domain(body)?,
            },
            other => return Err(DecodeError::UnknownType(other.to_owned())),
        })
    }

    /// The stored `event_type`.
    pub fn event_type(&self) -> &'static str {
        use LegacyEvent as E;
        match self {
            E::InstanceAdded { .. } => "instance.added",
            E::InstanceChanged { .. } => "instance.changed",
            E::InstanceRemoved => "instance.removed",
            E::InstanceDefaultOrgSet { .. } => "instance.default.org.set",
            E::InstanceIamProjectSet { .. } => "instance.iam.project.set",
            E::InstanceIamConsoleSet { .. } => "instance.iam.console.set",
            E::InstanceDefaultLanguageSet { .. } => "instance.default.language.set",
            E::InstanceDomainAdded { .. } => "instance.domain.added",
            E::InstanceDomainPrimarySet { .. } => "instance.domain.primary.set",
            E::InstanceDomainRemoved { .. } => "instance.domain.removed",
            E::InstanceTrustedDomainAdded { .. } => "instance.trusted_domains.added",
            E::InstanceTrustedDomainRemoved { .. } => "instance.trusted_domains.removed",
            E::OrgAdded { .. } => "org.added",
            E::OrgChanged { .. } => "org.changed",
            E::OrgDeactivated => "org.deactivated",
            E::OrgReactivated => "org.reactivated",
            E::OrgRemoved => "org.removed",
            E::OrgDomainAdded { .. } => "org.domain.added",
            E::OrgDomainVerificationAdded { .. } => "org.domain.verification.added",
            E::OrgDomainVerificationFailed { .. } => "org.domain.verification.failed",
            E::OrgDomainVerified { .. } => "org.domain.verified",
            E::OrgDomainPrimarySet { .. } => "org.domain.primary.set",
            E::OrgDomainRemoved { .. } => "org.domain.removed",
        }
    }

    /// The `aggregate_type` this event belongs to.
    pub fn aggregate_type(&self) -> &'static str {
        if self.event_type().starts_with("instance.") {
            INSTANCE_AGGREGATE
        } else {
            ORG_AGGREGATE
        }
    }

    /// The payload with the legacy writers' field names (empty values omitted).
    pub fn encode(&self) -> Value {
        use LegacyEvent as E;
        match self {
            E::InstanceAdded { name } | E::InstanceChanged { name } | E::OrgAdded { name } => {
                to_value(&NamePayload { name: name.clone() })
            }
            E::InstanceRemoved | E::OrgDeactivated | E::OrgReactivated | E::OrgRemoved => {
                Value::Object(serde_json::Map::new())
            }
            E::InstanceDefaultOrgSet { org_id } => to_value(&OrgIdPayload {
                org_id: org_id.clone(),
            }),
            E::InstanceIamProjectSet { iam_project_id } => to_value(&IamProjectPayload {
                iam_project_id: iam_project_id.clone(),
            }),
            E::InstanceIamConsoleSet { client_id, app_id } => to_value(&ConsolePayload {
                client_id: client_id.clone(),
                app_id: app_id.clone(),
            }),
            E::InstanceDefaultLanguageSet { language } => to_value(&LanguagePayload {
                language: language.clone(),
            }),
            E::InstanceDomainAdded { domain, generated } => to_value(&InstanceDomainAddedPayload {
                domain: domain.clone(),
                generated: *generated,
            }),
            E::OrgChanged { name } => to_value(&OptionalNamePayload { name: name.clone() }),
            E::OrgDomainVerificationAdded {
                domain,
                validation_type,
                validation_code,
                expires_at,
            } => to_value(&VerificationPayload {
                domain: domain.clone(),
                validation_type: Some(i64::from(validation_type.ordinal())),
                validation_code: validation_code.clone(),
                expires_at: *expires_at,
            }),
            E::InstanceDomainPrimarySet { domain }
            | E::InstanceDomainRemoved { domain }
            | E::InstanceTrustedDomainAdded { domain }
            | E::InstanceTrustedDomainRemoved { domain }
            | E::OrgDomainAdded { domain }
            | E::OrgDomainVerificationFailed { domain }
            | E::OrgDomainVerified { domain }
            | E::OrgDomainPrimarySet { domain }
            | E::OrgDomainRemoved { domain } => to_value(&DomainPayload {
                domain: domain.clone(),
            }),
        }
    }
}

/// The payload structs hold only strings, booleans, integers and JSON values, whose
/// serialization cannot fail.
fn to_value<T: Serialize>(payload: &T) -> Value {
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

/// Payloads of every catalogue type in events.md's shapes (some types twice: with and
/// without optional fields), for tests here and beside the reducer.
#[cfg(test)]
pub(crate) fn spec_samples() -> Vec<(&'static str, Value)> {
    use serde_json::json;
    vec![
        ("instance.added", json!({"name": "ACME"})),
        ("instance.changed", json!({"name": "ACME 2"})),
        ("instance.removed", json!({})),
        ("instance.default.org.set", json!({"orgId": "o1"})),
        ("instance.iam.project.set", json!({"iamProjectId": "p1"})),
        (
            "instance.iam.console.set",
            json!({"clientId": "c1", "appId": "a1"}),
        ),
        ("instance.default.language.set", json!({"language": "de"})),
        (
            "instance.domain.added",
            json!({"domain": "a.example", "generated": true}),
        ),
        ("instance.domain.added", json!({"domain": "b.example"})),
        (
            "instance.domain.primary.set",
            json!({"domain": "a.example"}),
        ),
        ("instance.domain.removed", json!({"domain": "a.example"})),
        (
            "instance.trusted_domains.added",
            json!({"domain": "t.example"}),
        ),
        (
            "instance.trusted_domains.removed",
            json!({"domain": "t.example"}),
        ),
        ("org.added", json!({"name": "Org"})),
        ("org.changed", json!({"name": "Org 2"})),
        ("org.changed", json!({})),
        ("org.deactivated", json!({})),
        ("org.reactivated", json!({})),
        ("org.removed", json!({})),
        ("org.domain.added", json!({"domain": "o.example"})),
        (
            "org.domain.verification.added",
            json!({"domain": "o.example", "validationType": 2, "validationCode": {"cryptoType": 0, "algorithm": "aes", "keyId": "k", "crypted": "eHl6"}}),
        ),
        (
            "org.domain.verification.added",
            json!({"domain": "o.example", "validationType": 1}),
        ),
        (
            "org.domain.verification.failed",
            json!({"domain": "o.example"}),
        ),
        ("org.domain.verified", json!({"domain": "o.example"})),
        ("org.domain.primary.set", json!({"domain": "o.example"})),
        ("org.domain.removed", json!({"domain": "o.example"})),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn decode(t: &str, v: Value) -> Result<LegacyEvent, DecodeError> {
        LegacyEvent::decode(t, Some(&v))
    }

    #[test]
    fn every_type_round_trips_through_its_spec_shape() {
        let cases = spec_samples();
        let mut seen = std::collections::BTreeSet::new();
        for (event_type, body) in cases {
            let event = decode(event_type, body.clone()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(event.event_type(), event_type);
            assert_eq!(
                event.encode(),
                body,
                "{event_type} encodes to its spec shape"
            );
            seen.insert(event_type);
        }
        assert_eq!(
            seen.len(),
            EVENT_TYPES.len(),
            "every catalogue type is covered"
        );
    }

    #[test]
    fn unknown_fields_are_ignored_and_absent_optionals_default() {
        let e = decode(
            "instance.domain.added",
            json!({"domain": "x.example", "foo": [1]}),
        )
        .unwrap();
        assert_eq!(
            e,
            LegacyEvent::InstanceDomainAdded {
                domain: "x.example".into(),
                generated: false
            }
        );
        let e = decode("instance.removed", json!({"name": "n", "domains": ["a"]})).unwrap();
        assert_eq!(e, LegacyEvent::InstanceRemoved);
        assert_eq!(
            LegacyEvent::decode("org.removed", None).unwrap(),
            LegacyEvent::OrgRemoved
        );
        assert_eq!(
            decode("org.changed", json!({"name": ""})).unwrap(),
            LegacyEvent::OrgChanged { name: None }
        );
    }

    #[test]
    fn malformed_payloads_are_clear_errors() {
        let err = decode("instance.added", json!({})).unwrap_err();
        assert!(
            err.to_string().contains("instance.added") && err.to_string().contains("name"),
            "{err}"
        );
        let err = decode("org.domain.added", json!({"domain": 5})).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed { .. }), "{err}");
        assert!(matches!(
            LegacyEvent::decode("org.domain.added", None),
            Err(DecodeError::MissingPayload { .. })
        ));
        assert!(matches!(
            decode("user.added", json!({})),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            decode("org.removed", json!("x")),
            Err(DecodeError::Malformed { .. })
        ));
        for bad in [
            json!({"domain": "d"}),
            json!({"domain": "d", "validationType": 0}),
            json!({"domain": "d", "validationType": 3}),
            json!({"domain": "d", "validationType": "1"}),
        ] {
            let err = decode("org.domain.verification.added", bad.clone()).unwrap_err();
            assert!(err.to_string().contains("validationType"), "{bad}: {err}");
        }
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_input_never_panics(
            idx in 0..EVENT_TYPES.len(),
            raw in ".{0,64}",
            num in any::<i64>(),
        ) {
            let t = EVENT_TYPES[idx];
            let _ = LegacyEvent::decode(t, serde_json::from_str::<Value>(&raw).ok().as_ref());
            let _ = LegacyEvent::decode(t, Some(&json!({"domain": raw, "name": num, "validationType": num})));
            let _ = LegacyEvent::decode(&raw, Some(&json!({})));
        }
    }
}
