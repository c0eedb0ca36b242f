//! M2 of the security review (text PostgreSQL cannot store): a NUL in any string field of
//! any method — found from the API's own descriptors, nested messages, repeated fields and
//! oneofs included — is INVALID_ARGUMENT naming the field, over gRPC, Connect JSON and
//! Connect protobuf alike, and writes nothing.
#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value,
};
use tower::ServiceExt as _;

/// Every path from `message` to a string field, at most `depth` messages deep.
fn string_paths(message: &MessageDescriptor, depth: usize) -> Vec<Vec<FieldDescriptor>> {
    let mut paths = Vec::new();
    for field in message.fields() {
        match field.kind() {
            Kind::String => paths.push(vec![field.clone()]),
            Kind::Message(inner) if depth > 0 && !inner.full_name().starts_with("google.") => {
                for mut rest in string_paths(&inner, depth - 1) {
                    rest.insert(0, field.clone());
                    paths.push(rest);
                }
            }
            _ => {}
        }
    }
    paths
}

/// A message of `descriptor` with only the field at `path` set to `text`.
fn with_text(
    descriptor: &MessageDescriptor,
    path: &[FieldDescriptor],
    text: &str,
) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    let (field, rest) = path.split_first().unwrap();
    let value = match field.kind() {
        Kind::Message(inner) => Value::Message(with_text(&inner, rest, text)),
        _ => Value::String(text.to_owned()),
    };
    let value = if field.is_list() {
        Value::List(vec![value])
    } else {
        value
    };
    message.set_field(field, value);
    message
}

struct Case {
    method: String,
    field: String,
    message: DynamicMessage,
}

fn cases(text: &str) -> Vec<Case> {
    let pool = DescriptorPool::decode(tenancy_api::pb::FILE_DESCRIPTOR_SET).unwrap();
    let mut cases = Vec::new();
    for service in pool
        .services()
        .filter(|s| s.full_name().starts_with("tenancy."))
    {
        for method in service.methods() {
            for path in string_paths(&method.input(), 3) {
                cases.push(Case {
                    method: format!("{}/{}", service.full_name(), method.name()),
                    field: path.last().unwrap().json_name().to_owned(),
                    message: with_text(&method.input(), &path, text),
                });
            }
        }
    }
    cases
}

async fn call(
    h: &support::Harness,
    method: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String, Option<String>) {
    let mut request = Request::post(format!("/{method}"))
        .header("host", "a.example.com")
        .header("authorization", "Bearer sys")
        .header("content-type", content_type);
    if content_type == "application/grpc" {
        request = request.header("te", "trailers");
    }
    let response = h
        .router
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let grpc = response
        .headers()
        .get("grpc-status")
        .map(|s| s.to_str().unwrap().to_owned());
    let message = response
        .headers()
        .get("grpc-message")
        .map(|m| m.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = message.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    (status, text, grpc)
}

async fn refused_everywhere(h: &support::Harness, text: &str) -> usize {
    let cases = cases(text);
    for case in &cases {
        let before = h.store.events().len();
        let proto = case.message.encode_to_vec();
        let json = serde_json::to_vec(&case.message).unwrap();
        let (status, body, _) = call(h, &case.method, "application/json", json).await;
        assert_eq!(status, 400, "JSON {} {}: {body}", case.method, case.field);
        assert!(
            body.contains("invalid_argument") && body.contains(&case.field),
            "JSON {} {}: {body}",
            case.method,
            case.field
        );
        let (status, body, _) = call(h, &case.method, "application/proto", proto.clone()).await;
        assert_eq!(status, 400, "proto {} {}: {body}", case.method, case.field);
        assert!(
            body.contains(&case.field),
            "proto {} {}: {body}",
            case.method,
            case.field
        );
        let mut framed = vec![0u8];
        framed.extend_from_slice(&u32::try_from(proto.len()).unwrap().to_be_bytes());
        framed.extend_from_slice(&proto);
        let (_, message, grpc) = call(h, &case.method, "application/grpc", framed).await;
        assert_eq!(
            grpc.as_deref(),
            Some("3"),
            "gRPC {} {}: {message}",
            case.method,
            case.field
        );
        assert!(
            message.contains(&case.field),
            "gRPC {} {}: {message}",
            case.method,
            case.field
        );
        assert_eq!(h.store.events().len(), before, "{} wrote", case.method);
    }
    cases.len()
}

#[tokio::test]
async fn a_nul_in_any_string_field_of_any_method_is_invalid_argument_naming_it() {
    let h = support::harness().await;
    let fields = refused_everywhere(&h, "a\0b").await;
    assert!(fields >= 40, "only {fields} string fields found");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn wherever_the_nul_is(before in ".{0,12}", after in ".{0,12}") {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let h = support::harness().await;
            refused_everywhere(&h, &format!("{before}\0{after}")).await;
        });
    }
}
