//! No input breaks the server: arbitrary bytes, arbitrary JSON and arbitrary protobuf
//! payloads on every method, over both protocols. Each answer is a well-formed error or
//! success (never a 5xx over JSON, never a dropped connection), a refused call writes
//! nothing, and the server answers a normal call afterwards.
#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use tower::ServiceExt as _;

const METHODS: &[&str] = &[
    "tenancy.instance.v2.InstanceService/GetInstance",
    "tenancy.instance.v2.InstanceService/UpdateInstance",
    "tenancy.instance.v2.InstanceService/DeleteInstance",
    "tenancy.instance.v2.InstanceService/ListInstances",
    "tenancy.instance.v2.InstanceService/AddCustomDomain",
    "tenancy.instance.v2.InstanceService/RemoveCustomDomain",
    "tenancy.instance.v2.InstanceService/SetPrimaryCustomDomain",
    "tenancy.instance.v2.InstanceService/ListCustomDomains",
    "tenancy.instance.v2.InstanceService/AddTrustedDomain",
    "tenancy.instance.v2.InstanceService/RemoveTrustedDomain",
    "tenancy.instance.v2.InstanceService/ListTrustedDomains",
    "tenancy.instance.v2.InstanceService/ResolveHost",
    "tenancy.org.v2.OrganizationService/AddOrganization",
    "tenancy.org.v2.OrganizationService/UpdateOrganization",
    "tenancy.org.v2.OrganizationService/ListOrganizations",
    "tenancy.org.v2.OrganizationService/DeactivateOrganization",
    "tenancy.org.v2.OrganizationService/ActivateOrganization",
    "tenancy.org.v2.OrganizationService/DeleteOrganization",
    "tenancy.org.v2.OrganizationService/AddOrganizationDomain",
    "tenancy.org.v2.OrganizationService/ListOrganizationDomains",
    "tenancy.org.v2.OrganizationService/DeleteOrganizationDomain",
    "tenancy.org.v2.OrganizationService/SetPrimaryOrganizationDomain",
    "tenancy.org.v2.OrganizationService/GenerateOrganizationDomainValidation",
    "tenancy.org.v2.OrganizationService/VerifyOrganizationDomain",
];

/// JSON values that look like requests: the field names of the protos, nested.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let names = prop::sample::select(vec![
        "name",
        "instanceId",
        "instance_id",
        "organizationId",
        "domain",
        "customDomain",
        "trustedDomain",
        "pagination",
        "limit",
        "offset",
        "asc",
        "pageToken",
        "filters",
        "sortingColumn",
        "type",
        "host",
        "organizationDomain",
        "nameFilter",
        "method",
        "inIdsFilter",
        "ids",
        "stateFilter",
        "state",
        "idFilter",
        "id",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,40}".prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "TEXT_FILTER_METHOD_CONTAINS",
            "ORG_FIELD_NAME_NAME",
            "1",
            "-1",
            "18446744073709551616",
            "a.example.com",
            "ORGANIZATION_STATE_ACTIVE"
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::vec((names.clone(), inner), 0..5).prop_map(|fields| {
                serde_json::Value::Object(
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                )
            }),
        ]
    })
}

#[derive(Debug, Clone)]
enum Body_ {
    Json(Vec<u8>),
    Grpc(Vec<u8>),
}

fn bodies() -> impl Strategy<Value = Body_> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Body_::Json),
        json_value().prop_map(|v| Body_::Json(v.to_string().into_bytes())),
        // A well-framed gRPC message with an arbitrary protobuf payload.
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|payload| {
            let mut framed = vec![0u8];
            framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            framed.extend_from_slice(&payload);
            Body_::Grpc(framed)
        }),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Body_::Grpc),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn no_input_breaks_a_method(method in prop::sample::select(METHODS), body in bodies(), token in prop::sample::select(vec!["sys", "a-token"])) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let h = HARNESS.get_or_init(|| std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(support::harness())
            }).join().unwrap());
            let events_before = h.store.events().len();
            let (content_type, bytes, grpc) = match body {
                Body_::Json(b) => ("application/json", b, false),
                Body_::Grpc(b) => ("application/grpc", b, true),
            };
            let mut request = Request::post(format!("/{method}"))
                .header("host", "a.example.com")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", content_type);
            if grpc {
                request = request.header("te", "trailers");
            }
            let response = h.router.clone().oneshot(request.body(Body::from(bytes)).unwrap()).await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await;
            prop_assert!(body.is_ok(), "the body of {method} could not be read");
            let ok = if grpc {
                // Trailers-only errors carry grpc-status in the headers; a success has
                // status 200 and a body.
                status == 200
            } else {
                prop_assert!(status < 500, "{method} answered {status}: {:?}", body);
                status == 200
            };
            let grpc_error = headers.get("grpc-status").is_some_and(|s| s != "0");
            if !ok || grpc_error {
                prop_assert_eq!(h.store.events().len(), events_before, "a refused call wrote events");
            }
            // (Not GetInstance: a generated call may have deleted instance A.)
            let normal = Request::post("/tenancy.instance.v2.InstanceService/ListInstances")
                .header("host", "a.example.com")
                .header("authorization", "Bearer sys")
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let after = h.router.clone().oneshot(normal).await.unwrap();
            prop_assert_eq!(after.status().as_u16(), 200, "a normal call after {}", method);
            Ok(())
        })?;
    }
}

static HARNESS: std::sync::OnceLock<support::Harness> = std::sync::OnceLock::new();
