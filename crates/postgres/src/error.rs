//! The one place where PostgreSQL failures become domain errors: SQLSTATE plus constraint
//! name -> [`Error`]. Constraint and index names come from `migrations/`.

use sqlx::error::ErrorKind;
use sqlx::postgres::PgDatabaseError;
use tenancy_core::{Error, Rule};

/// The domain meaning of a unique constraint or index.
fn unique_rule(constraint: &str) -> Rule {
    match constraint {
        "instances_pkey" => Rule::InstanceId,
        "organizations_pkey" => Rule::OrganizationId,
        "organizations_live_name_key" => Rule::OrganizationName,
        "instance_domains_custom_key" | "domains_instance_domain_key" => Rule::CustomInstanceDomain,
        "instance_domains_trusted_key" => Rule::TrustedInstanceDomain,
        "instance_domains_pkey" => Rule::InstanceDomain,
        "instance_domains_primary_key" | "domains_instance_primary_key" => {
            Rule::PrimaryInstanceDomain
        }
        "org_domains_pkey" | "org_domains_domain_key" | "domains_live_key" => {
            Rule::OrganizationDomain
        }
        "org_domains_verified_key" | "domains_verified_org_domain_key" => {
            Rule::VerifiedOrganizationDomain
        }
        "org_domains_primary_key" | "domains_org_primary_key" => Rule::PrimaryOrganizationDomain,
        _ => Rule::Other,
    }
}

/// What a foreign key points at.
fn referenced(constraint: &str) -> &'static str {
    if constraint.ends_with("org_fkey") {
        "organization"
    } else {
        "instance"
    }
}

/// The column a check constraint guards.
fn checked_field(constraint: &str) -> &'static str {
    if constraint.ends_with("domain_length") {
        "domain"
    } else if constraint.ends_with("name_not_empty") {
        "name"
    } else if constraint.ends_with("id_not_empty") {
        "id"
    } else if constraint.ends_with("validation_type_check") {
        "validation_type"
    } else {
        "value"
    }
}

/// `a, b` of PostgreSQL's `Key (x, y)=(a, b) already exists.`; the text as it is otherwise.
fn key_values(detail: &str) -> String {
    detail
        .split_once(")=(")
        .and_then(|(_, rest)| rest.rsplit_once(") already exists"))
        .map_or_else(|| detail.to_owned(), |(values, _)| values.to_owned())
}

/// Maps a sqlx error to the domain error.
pub fn on_constraint(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::RowNotFound => return Error::not_found("row", "matching the query"),
        sqlx::Error::Database(db) => {
            let constraint = db.constraint().unwrap_or_default().to_owned();
            let detail = db
                .try_downcast_ref::<PgDatabaseError>()
                .and_then(|e| e.detail().map(str::to_owned))
                .unwrap_or_else(|| db.message().to_owned());
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    // The key's values, not PostgreSQL's sentence around them (commands
                    // replace them by the value as written: command::as_claimed).
                    return Error::AlreadyExists {
                        rule: unique_rule(&constraint),
                        value: key_values(&detail),
                    };
                }
                ErrorKind::ForeignKeyViolation => {
                    return Error::NotFound {
                        kind: referenced(&constraint),
                        id: detail,
                    };
                }
                ErrorKind::CheckViolation => {
                    return Error::InvalidArgument {
                        field: checked_field(&constraint),
                        reason: format!("violates {constraint}: {}", db.message()),
                    };
                }
                ErrorKind::NotNullViolation => {
                    return Error::invalid("value", db.message().to_owned());
                }
                _ => {}
            }
            // serialization_failure, deadlock_detected
            if code == "40001" || code == "40P01" {
                return Error::Conflict(db.message().to_owned());
            }
            // character_not_in_repertoire (NUL in text), untranslatable_character (\u0000
            // in jsonb): text PostgreSQL cannot store.
            if code == "22021" || code == "22P05" {
                return Error::invalid(
                    "text",
                    "contains a character PostgreSQL cannot store (NUL, U+0000)",
                );
            }
            if code == "22P02" {
                return Error::invalid("value", db.message().to_owned());
            }
        }
        _ => {}
    }
    Error::internal_with("database error", error)
}

/// Whether `error`, or an error it was caused by, says that the database is not there
/// right now — not running yet, shutting down or restarting, refusing connections, or the
/// connection broke — rather than that something is wrong (credentials, a database that
/// does not exist, a statement): a failure worth waiting out and retrying.
pub fn is_database_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(error) = error.downcast_ref::<sqlx::Error>() {
            return match error {
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    // connection_exception (08...), admin_shutdown, crash_shutdown,
                    // cannot_connect_now (starting up, in recovery), too_many_connections
                    code.starts_with("08")
                        || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
                }),
                _ => false,
            };
        }
        next = error.source();
    }
    false
}

/// `?`-friendly conversion.
pub(crate) trait MapDb<T> {
    fn db(self) -> Result<T, Error>;
}

impl<T> MapDb<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, Error> {
        self.map_err(on_constraint)
    }
}

#[cfg(test)]
mod tests {
    use super::is_database_unavailable;
    use tenancy_core::Error;

    #[test]
    fn a_broken_connection_is_unavailable_and_a_wrong_statement_is_not() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_database_unavailable(&refused));
        // As the repositories return it: wrapped, the cause kept as the source.
        let wrapped = Error::internal_with("database error", refused);
        assert!(is_database_unavailable(&wrapped));
        assert!(is_database_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!is_database_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_database_unavailable(&Error::internal("no cause")));
        assert!(!is_database_unavailable(&sqlx::Error::Configuration(
            "bad url".into()
        )));
    }
}
