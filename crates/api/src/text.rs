//! Text PostgreSQL cannot store. A `text` or `jsonb` value cannot hold the NUL character
//! (U+0000), so every string of every request is checked once, after decoding and before
//! any method runs, whatever the protocol: a NUL anywhere is INVALID_ARGUMENT naming the
//! field (its proto3-JSON path), never an INTERNAL error from the database.

use serde::Serialize;
use serde_json::Value;
use tonic::Status;

/// INVALID_ARGUMENT naming the first field of `message` whose text holds a NUL.
pub fn check_storable<M: Serialize>(message: &M) -> Result<(), Status> {
    let value = serde_json::to_value(message)
        .map_err(|e| Status::internal(format!("encoding the request for its check: {e}")))?;
    match first_nul(&value, String::new()) {
        None => Ok(()),
        Some(path) => Err(Status::invalid_argument(format!(
            "invalid {path}: contains the NUL character (U+0000), which cannot be stored"
        ))),
    }
}

fn first_nul(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_nul(item, format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(name, field)| {
            let path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if name.contains('\0') {
                Some(path)
            } else {
                first_nul(field, path)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::org::v2::{AddOrganizationRequest, ListOrganizationsRequest};

    #[test]
    fn a_nul_anywhere_names_its_field() {
        let ok = AddOrganizationRequest {
            name: "ACME".into(),
            ..Default::default()
        };
        assert!(check_storable(&ok).is_ok());
        let bad = AddOrganizationRequest {
            name: "a\0b".into(),
            ..Default::default()
        };
        let status = check_storable(&bad).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().starts_with("invalid name:"),
            "{}",
            status.message()
        );
        let nested: ListOrganizationsRequest = serde_json::from_str(
            r#"{"filters":[{"stateFilter":{"state":"ORGANIZATION_STATE_ACTIVE"}},{"nameFilter":{"name":"a\u0000"}}]}"#,
        )
        .unwrap();
        let status = check_storable(&nested).unwrap_err();
        assert!(
            status
                .message()
                .starts_with("invalid filters[1].nameFilter.name:"),
            "{}",
            status.message()
        );
    }
}
