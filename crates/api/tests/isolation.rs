//! Tenant isolation through the API over randomised data, on PostgreSQL: four instances,
//! each writing through its own instance token (gRPC and JSON in turn); afterwards each
//! token sees exactly its instance's model, and every attempt at another instance's
//! objects (by its Host, by naming it, by its ids) is NOT_FOUND and changes nothing.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::{Client, Published, authed, serve};
use tenancy_api::Api;
use tenancy_api::auth::{ApiTokens, TokenEntry, token_digest};
use tenancy_api::pb::org::v2::organization_service_client::OrganizationServiceClient;
use tenancy_api::pb::org::v2::*;
use tenancy_core::challenge::{ChallengeSettings, OsTokens};
use tenancy_core::command::{AddInstance, AddInstanceDomain, run};
use tenancy_core::id::InstanceId;
use tenancy_core::page_token::PageTokens;
use tenancy_core::ports::{SonyflakeGenerator, SystemClock};
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_postgres::hosts::{HostResolver, HostResolverConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::Rng;
use tonic::Code;

const ORG: &str = "tenancy.org.v2.OrganizationService";
const INSTANCES: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
struct OrgModel {
    name: String,
    active: bool,
    domains: Vec<String>,
}

fn host(k: usize) -> String {
    format!("h{k}.iso.test")
}

fn token(k: usize) -> String {
    format!("token-of-{k}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_token_never_reaches_another_instance() {
    let db = TestDatabase::fresh().await.unwrap();
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let store = Arc::new(PgStore::with_events(db.pool.clone(), events.clone()));
    let ctx = tenancy_testkit::fixtures::context();
    let mut instances: Vec<InstanceId> = Vec::new();
    for k in 0..INSTANCES {
        let id = run(
            &*store,
            &ctx,
            &AddInstance {
                name: format!("I{k}"),
            },
        )
        .await
        .unwrap();
        let domain = AddInstanceDomain {
            instance_id: id.clone(),
            domain: host(k),
            generated: true,
        };
        run(&*store, &ctx, &domain).await.unwrap();
        instances.push(id);
    }
    let api = Api {
        factory: store.clone(),
        events,
        hosts: Arc::new(
            HostResolver::start(db.pool.clone(), HostResolverConfig::default())
                .await
                .unwrap(),
        ),
        checker: Arc::new(Published::default()),
        challenge: ChallengeSettings {
            prefix: "tenancy".into(),
            lifetime: Duration::from_secs(3600),
        },
        clock: Arc::new(SystemClock),
        ids: Arc::new(SonyflakeGenerator::new(7)),
        tokens: Arc::new(OsTokens),
        page_tokens: PageTokens::new(vec![5u8; 32]).unwrap(),
    };
    let entries: Vec<TokenEntry> = (0..INSTANCES)
        .map(|k| TokenEntry {
            name: format!("admin-{k}"),
            sha256: token_digest(&token(k)),
            instance_id: Some(instances[k].as_str().to_owned()),
        })
        .collect();
    let (addr, _) = serve(api, ApiTokens::new(&entries).unwrap()).await;
    let client = Client { addr };

    // Random writes, each through its instance's token; names and domains repeat across
    // instances on purpose (they are unique per instance only).
    let mut models: Vec<BTreeMap<String, OrgModel>> = vec![BTreeMap::new(); INSTANCES];
    let mut rng = Rng(0x5eed_1234);
    for step in 0..160 {
        let k = rng.next(INSTANCES as u64) as usize;
        let ids: Vec<String> = models[k].keys().cloned().collect();
        let pick = |rng: &mut Rng| ids.get(rng.next(ids.len().max(1) as u64) as usize).cloned();
        match rng.next(5) {
            0 | 1 => {
                let name = format!("org-{}", rng.next(40));
                if models[k]
                    .values()
                    .any(|o| o.name.eq_ignore_ascii_case(&name))
                {
                    continue;
                }
                let (status, body) = if step % 2 == 0 {
                    client
                        .json(
                            &host(k),
                            Some(&token(k)),
                            &format!("{ORG}/AddOrganization"),
                            &json!({"name": name}),
                        )
                        .await
                } else {
                    let mut c = OrganizationServiceClient::new(client.channel(&host(k)).await);
                    let id = c
                        .add_organization(authed(
                            &token(k),
                            AddOrganizationRequest {
                                name: name.clone(),
                                organization_id: None,
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner()
                        .organization_id;
                    (200, json!({"organizationId": id}))
                };
                assert_eq!(status, 200, "{body}");
                let id = body["organizationId"].as_str().unwrap().to_owned();
                models[k].insert(
                    id,
                    OrgModel {
                        name,
                        active: true,
                        domains: vec![],
                    },
                );
            }
            2 => {
                let Some(id) = pick(&mut rng) else { continue };
                let domain = format!("d{}.shared.example", rng.next(30));
                if models[k][&id].domains.contains(&domain) {
                    continue;
                }
                let (status, body) = client
                    .json(
                        &host(k),
                        Some(&token(k)),
                        &format!("{ORG}/AddOrganizationDomain"),
                        &json!({"organizationId": id, "domain": domain}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                models[k].get_mut(&id).unwrap().domains.push(domain);
            }
            3 => {
                let Some(id) = pick(&mut rng) else { continue };
                let active = models[k][&id].active;
                let method = if active {
                    "DeactivateOrganization"
                } else {
                    "ActivateOrganization"
                };
                let (status, body) = client
                    .json(
                        &host(k),
                        Some(&token(k)),
                        &format!("{ORG}/{method}"),
                        &json!({"organizationId": id}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                models[k].get_mut(&id).unwrap().active = !active;
            }
            _ => {
                let Some(id) = pick(&mut rng) else { continue };
                if rng.next(3) != 0 {
                    continue;
                }
                let (status, body) = client
                    .json(
                        &host(k),
                        Some(&token(k)),
                        &format!("{ORG}/DeleteOrganization"),
                        &json!({"organizationId": id}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                models[k].remove(&id);
            }
        }
    }

    // Every other instance's objects, through every way of naming them: NOT_FOUND.
    for k in 0..INSTANCES {
        for j in (0..INSTANCES).filter(|&j| j != k) {
            let (status, _) = client
                .json(
                    &host(j),
                    Some(&token(k)),
                    &format!("{ORG}/ListOrganizations"),
                    &json!({}),
                )
                .await;
            assert_eq!(status, 404, "token {k} on the host of {j}");
            let mut c = OrganizationServiceClient::new(client.channel(&host(k)).await);
            let mut named = authed(&token(k), ListOrganizationsRequest::default());
            named.metadata_mut().insert(
                "x-tenancy-instance-id",
                instances[j].as_str().parse().unwrap(),
            );
            assert_eq!(
                c.list_organizations(named).await.unwrap_err().code(),
                Code::NotFound
            );
            for id in models[j].keys() {
                for (method, body) in [
                    (
                        "UpdateOrganization",
                        json!({"organizationId": id, "name": "stolen"}),
                    ),
                    ("DeactivateOrganization", json!({"organizationId": id})),
                    ("DeleteOrganization", json!({"organizationId": id})),
                    ("ListOrganizationDomains", json!({"organizationId": id})),
                    (
                        "AddOrganizationDomain",
                        json!({"organizationId": id, "domain": "stolen.example"}),
                    ),
                ] {
                    let (status, response) = client
                        .json(&host(k), Some(&token(k)), &format!("{ORG}/{method}"), &body)
                        .await;
                    assert_eq!(
                        (status, response["code"].as_str()),
                        (404, Some("not_found")),
                        "{method} of {j}'s org by {k}: {response}"
                    );
                }
            }
        }
    }

    // Each token sees exactly its instance's model (walked by page tokens, 3 per page).
    for (k, model) in models.iter().enumerate() {
        let mut seen = BTreeMap::new();
        let mut page_token = String::new();
        loop {
            let (status, body) = client
                .json(
                    &host(k),
                    Some(&token(k)),
                    &format!("{ORG}/ListOrganizations"),
                    &json!({"pagination": {"limit": 3, "pageToken": page_token}}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            for org in body["organizations"].as_array().into_iter().flatten() {
                let id = org["id"].as_str().unwrap().to_owned();
                let (_, domains) = client.json(&host(k), Some(&token(k)), &format!("{ORG}/ListOrganizationDomains"), &json!({"organizationId": id, "sortingColumn": "DOMAIN_FIELD_NAME_CREATION_DATE", "pagination": {"asc": true}})).await;
                let domains = domains["domains"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["domainName"].as_str().unwrap().to_owned())
                    .collect();
                seen.insert(
                    id,
                    OrgModel {
                        name: org["name"].as_str().unwrap().to_owned(),
                        active: org["state"] == "ORGANIZATION_STATE_ACTIVE",
                        domains,
                    },
                );
            }
            page_token = body["pagination"]["nextPageToken"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if page_token.is_empty() {
                break;
            }
        }
        assert_eq!(&seen, model, "instance {k}");
    }
    assert!(
        models.iter().map(BTreeMap::len).sum::<usize>() > 20,
        "the walk wrote enough to mean something"
    );
}
