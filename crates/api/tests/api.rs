//! The API over the in-memory adapters, through a real gRPC client (tonic) and raw
//! HTTP/1.1 JSON calls on 127.0.0.1.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

mod support;

use serde_json::{Value, json};
use support::{Harness, LIMIT, authed, harness};
use tenancy_api::pb::filter::v2::PaginationRequest;
use tenancy_api::pb::instance::v2::instance_service_client::InstanceServiceClient;
use tenancy_api::pb::instance::v2::*;
use tenancy_api::pb::org::v2::organization_service_client::OrganizationServiceClient;
use tenancy_api::pb::org::v2::*;
use tonic::Code;

const INSTANCE: &str = "tenancy.instance.v2.InstanceService";
const ORG: &str = "tenancy.org.v2.OrganizationService";

async fn orgs(h: &Harness, host: &str) -> OrganizationServiceClient<tonic::transport::Channel> {
    OrganizationServiceClient::new(h.channel(host).await)
}

async fn instances(h: &Harness, host: &str) -> InstanceServiceClient<tonic::transport::Channel> {
    InstanceServiceClient::new(h.channel(host).await)
}

async fn add_org(h: &Harness, host: &str, token: &str, name: &str) -> String {
    orgs(h, host)
        .await
        .add_organization(authed(
            token,
            AddOrganizationRequest {
                name: name.into(),
                organization_id: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .organization_id
}

#[tokio::test]
async fn grpc_and_json_serve_the_same_methods() {
    let h = harness().await;
    let id = add_org(&h, "a.example.com:443", "a-token", "Widgets").await;
    let (status, body) = h
        .json(
            "a.example.com",
            Some("a-token"),
            &format!("{ORG}/ListOrganizations"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organizations"][0]["id"], id);
    assert_eq!(body["organizations"][0]["name"], "Widgets");
    assert_eq!(
        body["organizations"][0]["state"],
        "ORGANIZATION_STATE_ACTIVE"
    );
    assert_eq!(body["pagination"]["totalResult"], "1");

    let (status, body) = h
        .json(
            "a.example.com",
            Some("sys"),
            &format!("{INSTANCE}/GetInstance"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instance"]["id"], h.a.as_str());
    assert_eq!(
        body["instance"]["customDomains"][0]["domain"],
        "a.example.com"
    );
    let got = instances(&h, "x.invalid")
        .await
        .get_instance(authed(
            "sys",
            GetInstanceRequest {
                instance_id: h.b.as_str().into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.instance.unwrap().name, "B");
}

#[tokio::test]
async fn every_call_needs_a_known_token() {
    let h = harness().await;
    let mut client = instances(&h, "a.example.com").await;
    for request in [
        tonic::Request::new(GetInstanceRequest::default()),
        authed("not-a-token", GetInstanceRequest::default()),
    ] {
        let err = client.get_instance(request).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    }
    for token in [None, Some("nope")] {
        let (status, body) = h
            .json(
                "a.example.com",
                token,
                &format!("{INSTANCE}/GetInstance"),
                &json!({}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthenticated"))
        );
    }
    // Reflection too.
    let (status, _) = h
        .post(
            "a.example.com",
            None,
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "application/json",
            b"{}",
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_instance_token_reaches_only_its_instance() {
    let h = harness().await;
    let b_org = add_org(&h, "b.example.com", "b-token", "Bees").await;

    // The Host of another instance, an explicit id of another instance, a header naming
    // it: NOT_FOUND, worded as for an instance that does not exist.
    let mut client = instances(&h, "b.example.com").await;
    let foreign = client
        .get_instance(authed("a-token", GetInstanceRequest::default()))
        .await
        .unwrap_err();
    let missing = instances(&h, "a.example.com")
        .await
        .get_instance(authed(
            "sys",
            GetInstanceRequest {
                instance_id: "no-such-instance".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    assert_eq!(missing.code(), Code::NotFound);
    // By Host: worded as for a host nobody owns (no instance id is given away).
    let unknown_host = instances(&h, "nobody.example.com")
        .await
        .get_instance(authed("a-token", GetInstanceRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(unknown_host.code(), Code::NotFound);
    assert_eq!(
        foreign.message().replace("b.example.com", "HOST"),
        unknown_host.message().replace("nobody.example.com", "HOST")
    );
    assert!(!foreign.message().contains(h.b.as_str()), "{foreign:?}");
    let explicit = instances(&h, "a.example.com")
        .await
        .get_instance(authed(
            "a-token",
            GetInstanceRequest {
                instance_id: h.b.as_str().into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(explicit.code(), Code::NotFound);
    // By id: worded as for an id nobody has.
    assert_eq!(
        explicit.message().replace(h.b.as_str(), "ID"),
        missing.message().replace("no-such-instance", "ID")
    );
    let (status, _) = h
        .json(
            "b.example.com",
            Some("a-token"),
            &format!("{ORG}/ListOrganizations"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);

    // B's organization through A's instance does not exist.
    let err = orgs(&h, "a.example.com")
        .await
        .deactivate_organization(authed(
            "a-token",
            DeactivateOrganizationRequest {
                organization_id: b_org.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // The system token may name B with the header; B's org is there.
    let (status, body) = h
        .json(
            "a.example.com",
            Some("sys"),
            &format!("{ORG}/ListOrganizations"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, body["organizations"].as_array().map(Vec::len)),
        (200, None),
        "A has none: {body}"
    );
    let mut request = authed("sys", ListOrganizationsRequest::default());
    request
        .metadata_mut()
        .insert("x-tenancy-instance-id", h.b.as_str().parse().unwrap());
    let listed = orgs(&h, "a.example.com")
        .await
        .list_organizations(request)
        .await
        .unwrap();
    assert_eq!(listed.into_inner().organizations[0].id, b_org);

    // System methods, host resolution of another instance.
    let err = client
        .list_instances(authed("a-token", ListInstancesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let other = client
        .resolve_host(authed(
            "a-token",
            ResolveHostRequest {
                host: "B.example.com:8443".into(),
                organization_domain: String::new(),
            },
        ))
        .await
        .unwrap_err();
    let unknown = client
        .resolve_host(authed(
            "a-token",
            ResolveHostRequest {
                host: "nobody.example.com".into(),
                organization_domain: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (other.code(), unknown.code()),
        (Code::NotFound, Code::NotFound)
    );
    assert_eq!(
        other.message().replace("b.example.com", "HOST"),
        unknown.message().replace("nobody.example.com", "HOST")
    );
}

#[tokio::test]
async fn bad_input_gets_a_typed_error_naming_the_field_or_rule() {
    let h = harness().await;
    let org = add_org(&h, "a.example.com", "a-token", "Widgets").await;
    let mut client = orgs(&h, "a.example.com").await;
    let err = client
        .add_organization(authed(
            "a-token",
            AddOrganizationRequest {
                name: "WIDGETS".into(),
                organization_id: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("organization name"), "{err:?}");
    let err = client
        .add_organization_domain(authed(
            "a-token",
            AddOrganizationDomainRequest {
                organization_id: org.clone(),
                domain: "not a domain".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("domain"), "{err:?}");
    let err = client
        .update_organization(authed(
            "a-token",
            UpdateOrganizationRequest {
                organization_id: "nope".into(),
                name: "X".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .list_organizations(authed(
            "a-token",
            ListOrganizationsRequest {
                pagination: Some(PaginationRequest {
                    limit: 5000,
                    ..PaginationRequest::default()
                }),
                ..ListOrganizationsRequest::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("pagination.limit"));
    let err = client
        .list_organizations(authed(
            "a-token",
            ListOrganizationsRequest {
                pagination: Some(PaginationRequest {
                    page_token: "eyJ2YWx1ZSI6MX0.AAAA".into(),
                    ..PaginationRequest::default()
                }),
                ..ListOrganizationsRequest::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"));

    // JSON: malformed bodies, unknown fields, wrong content type, an oversize body.
    let path = format!("{ORG}/AddOrganization");
    for body in [&b"{"[..], b"{\"name\": 5}", b"{\"nmae\": \"x\"}", b"[]"] {
        let (status, text) = h
            .post(
                "a.example.com",
                Some("a-token"),
                &path,
                "application/json",
                body,
            )
            .await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("invalid_argument"), "{text}");
    }
    let (status, _) = h
        .post("a.example.com", Some("a-token"), &path, "text/plain", b"{}")
        .await;
    assert_eq!(status, 415);
    let big = json!({ "name": "x".repeat(LIMIT + 1) }).to_string();
    let (status, text) = h
        .post(
            "a.example.com",
            Some("a-token"),
            &path,
            "application/json",
            big.as_bytes(),
        )
        .await;
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("resource_exhausted"));
    let err = client
        .add_organization(authed(
            "a-token",
            AddOrganizationRequest {
                name: "x".repeat(LIMIT + 1),
                organization_id: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    // Nothing of the refused calls was written.
    assert_eq!(
        h.store
            .state()
            .organizations(
                &tenancy_core::query::OrganizationCriteria {
                    instance_id: Some(h.a.clone()),
                    ..Default::default()
                },
                &Default::default()
            )
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn keyset_pages_walk_the_same_rows_as_offset_pages() {
    let h = harness().await;
    for n in 0..23 {
        add_org(
            &h,
            "a.example.com",
            "a-token",
            &format!("org-{:02}", (n * 7) % 23),
        )
        .await;
    }
    let mut client = orgs(&h, "a.example.com").await;
    let list = |offset: u64, token: String| ListOrganizationsRequest {
        pagination: Some(PaginationRequest {
            offset,
            limit: 5,
            asc: true,
            page_token: token,
        }),
        sorting_column: OrgFieldName::Name.into(),
        filters: vec![OrganizationSearchFilter {
            filter: Some(organization_search_filter::Filter::NameFilter(
                OrgNameFilter {
                    name: "ORG-".into(),
                    method: tenancy_api::pb::filter::v2::TextFilterMethod::StartsWithIgnoreCase
                        .into(),
                },
            )),
        }],
    };
    let (mut by_offset, mut by_token) = (Vec::new(), Vec::new());
    for page in 0..5 {
        let r = client
            .list_organizations(authed("a-token", list(page * 5, String::new())))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.pagination.unwrap().total_result, 23);
        by_offset.extend(r.organizations.into_iter().map(|o| o.name));
    }
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = client
            .list_organizations(authed("a-token", list(0, token)))
            .await
            .unwrap()
            .into_inner();
        by_token.extend(r.organizations.into_iter().map(|o| o.name));
        token = r.pagination.unwrap().next_page_token;
        pages += 1;
        if token.is_empty() {
            break;
        }
        // A token is bound to its list: another sort or another instance refuses it.
        let mut other = list(0, token.clone());
        other.sorting_column = OrgFieldName::CreationDate.into();
        let err = client
            .list_organizations(authed("a-token", other))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
    assert_eq!(pages, 5);
    assert_eq!(by_token, by_offset);
    let mut sorted = by_offset.clone();
    sorted.sort();
    assert_eq!(by_offset, sorted);
    assert_eq!(by_offset.len(), 23);
}

#[tokio::test]
async fn domains_resolution_and_verification() {
    let h = harness().await;
    let org = add_org(&h, "a.example.com", "a-token", "Widgets").await;
    let mut client = orgs(&h, "a.example.com").await;
    client
        .add_organization_domain(authed(
            "a-token",
            AddOrganizationDomainRequest {
                organization_id: org.clone(),
                domain: "widgets.example.org".into(),
            },
        ))
        .await
        .unwrap();
    let generated = client
        .generate_organization_domain_validation(authed(
            "a-token",
            GenerateOrganizationDomainValidationRequest {
                organization_id: org.clone(),
                domain: "widgets.example.org".into(),
                r#type: DomainValidationType::Dns.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(generated.url, "_tenancy-challenge.widgets.example.org");
    let verify = VerifyOrganizationDomainRequest {
        organization_id: org.clone(),
        domain: "widgets.example.org".into(),
    };
    let err = client
        .verify_organization_domain(authed("a-token", verify.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    h.published.0.lock().unwrap().insert(generated.token);
    client
        .verify_organization_domain(authed("a-token", verify))
        .await
        .unwrap();
    client
        .set_primary_organization_domain(authed(
            "a-token",
            SetPrimaryOrganizationDomainRequest {
                organization_id: org.clone(),
                domain: "widgets.example.org".into(),
            },
        ))
        .await
        .unwrap();
    let listed = client
        .list_organization_domains(authed(
            "a-token",
            ListOrganizationDomainsRequest {
                organization_id: org.clone(),
                ..ListOrganizationDomainsRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let domain = &listed.domains[0];
    assert!(domain.is_verified && domain.is_primary);
    let (_, body) = h
        .json(
            "a.example.com",
            Some("a-token"),
            &format!("{ORG}/ListOrganizations"),
            &json!({}),
        )
        .await;
    assert_eq!(
        body["organizations"][0]["primaryDomain"],
        "widgets.example.org"
    );

    let resolved = instances(&h, "a.example.com")
        .await
        .resolve_host(authed(
            "sys",
            ResolveHostRequest {
                host: "A.Example.com:443".into(),
                organization_domain: "widgets.example.org".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            resolved.instance_id.as_str(),
            resolved.organization_id.as_str()
        ),
        (h.a.as_str(), org.as_str())
    );

    // Custom and trusted domains of the instance.
    let (status, body) = h
        .json(
            "a.example.com",
            Some("sys"),
            &format!("{INSTANCE}/AddCustomDomain"),
            &json!({"customDomain": "login.a.example"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = h
        .json(
            "b.example.com",
            Some("sys"),
            &format!("{INSTANCE}/AddCustomDomain"),
            &json!({"customDomain": "LOGIN.a.example"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_exists")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("custom instance domain")
    );
    let (status, _) = h
        .json(
            "a.example.com",
            Some("a-token"),
            &format!("{INSTANCE}/AddCustomDomain"),
            &json!({"customDomain": "x.a.example"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = h
        .json(
            "a.example.com",
            Some("a-token"),
            &format!("{INSTANCE}/AddTrustedDomain"),
            &json!({"trustedDomain": "proxy.example"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = h
        .json(
            "a.example.com",
            Some("a-token"),
            &format!("{INSTANCE}/ListCustomDomains"),
            &json!({
                "sortingColumn": "DOMAIN_FIELD_NAME_DOMAIN",
                "pagination": {"asc": true},
                "filters": [{"generatedFilter": false}]
            }),
        )
        .await;
    assert_eq!(body["domains"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["domains"][0]["domain"], "login.a.example");
    let (_, body) = h
        .json(
            "a.example.com",
            Some("a-token"),
            &format!("{INSTANCE}/ListTrustedDomains"),
            &json!({}),
        )
        .await;
    assert_eq!(
        body["trustedDomain"][0]["domain"], "proxy.example",
        "{body}"
    );
    let (status, body) = h
        .json(
            "a.example.com",
            Some("sys"),
            &format!("{INSTANCE}/ListInstances"),
            &json!({
                "filters": [{"customDomainsFilter": {"domains": ["LOGIN.A.EXAMPLE"]}}]
            }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["instances"].as_array().unwrap().len(), 1);
    assert_eq!(body["instances"][0]["id"], h.a.as_str());
    let _: Value = body;
}
