//! Errors, mapped in one place: the core's typed errors to gRPC statuses, and gRPC
//! statuses to Connect's JSON errors and HTTP statuses.

use axum::http::StatusCode;
use tenancy_core::Error;
use tonic::{Code, Status};

/// The status a core error answers with. Messages name the field or the rule; internal
/// failures are logged and answered without their cause.
pub fn status(error: Error) -> Status {
    let message = error.to_string();
    match error {
        Error::NotFound { .. } => Status::not_found(message),
        Error::AlreadyExists { .. } => Status::already_exists(message),
        Error::InvalidArgument { .. } => Status::invalid_argument(message),
        Error::PreconditionFailed(_) | Error::NoChanges(_) | Error::Challenge(_) => {
            Status::failed_precondition(message)
        }
        Error::Conflict(_) => Status::aborted(message),
        Error::Unavailable(_) => Status::unavailable(message),
        Error::MissingTenant(_) | Error::MultipleFound { .. } | Error::Internal { .. } => {
            // The whole chain (PostgreSQL's message included) goes to the log only.
            tracing::error!(error = %error.chain(), "request failed");
            Status::internal("internal error")
        }
    }
}

/// Connect's name of a code, and the HTTP status Connect answers it with.
pub fn connect_code(code: Code) -> (&'static str, StatusCode) {
    match code {
        Code::Ok => ("ok", StatusCode::OK),
        Code::Cancelled => (
            "canceled",
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        ),
        Code::Unknown => ("unknown", StatusCode::INTERNAL_SERVER_ERROR),
        Code::InvalidArgument => ("invalid_argument", StatusCode::BAD_REQUEST),
        Code::DeadlineExceeded => ("deadline_exceeded", StatusCode::GATEWAY_TIMEOUT),
        Code::NotFound => ("not_found", StatusCode::NOT_FOUND),
        Code::AlreadyExists => ("already_exists", StatusCode::CONFLICT),
        Code::PermissionDenied => ("permission_denied", StatusCode::FORBIDDEN),
        Code::ResourceExhausted => ("resource_exhausted", StatusCode::TOO_MANY_REQUESTS),
        Code::FailedPrecondition => ("failed_precondition", StatusCode::BAD_REQUEST),
        Code::Aborted => ("aborted", StatusCode::CONFLICT),
        Code::OutOfRange => ("out_of_range", StatusCode::BAD_REQUEST),
        Code::Unimplemented => ("unimplemented", StatusCode::NOT_IMPLEMENTED),
        Code::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        Code::Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        Code::DataLoss => ("data_loss", StatusCode::INTERNAL_SERVER_ERROR),
        Code::Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenancy_core::Rule;

    #[test]
    fn core_errors_map_to_codes_that_name_the_field_or_rule() {
        let s = status(Error::invalid("name", "must not be empty"));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("name"));
        let s = status(Error::already_exists(Rule::OrganizationName, "ACME"));
        assert_eq!(s.code(), Code::AlreadyExists);
        assert!(s.message().contains("organization name"));
        assert_eq!(
            status(Error::not_found("instance", "i1")).code(),
            Code::NotFound
        );
        let s = status(Error::internal("password=x in a DSN"));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("password"));
    }
}
