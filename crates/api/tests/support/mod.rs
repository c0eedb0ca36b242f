//! An API server over the in-memory adapters on 127.0.0.1, with two instances
//! (`a.example.com`, `b.example.com`) and three tokens: `sys` (system), `a-token` and
//! `b-token` (bound to one instance each).
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tenancy_api::auth::{ApiTokens, TokenEntry, token_digest};
use tenancy_api::hosts::RepositoryHosts;
use tenancy_api::{Api, router};
use tenancy_core::challenge::{
    Challenge, ChallengeFailure, ChallengeSettings, DomainChallenge, OsTokens,
};
use tenancy_core::command::{AddInstance, AddInstanceDomain, run};
use tenancy_core::id::InstanceId;
use tenancy_core::page_token::PageTokens;
use tenancy_testkit::InMemoryStore;
use tenancy_testkit::fixtures::{self, SequentialIds, SteppingClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// Accepts a token once the test "published" it.
#[derive(Clone, Default)]
pub struct Published(pub Arc<Mutex<HashSet<String>>>);

#[async_trait::async_trait]
impl DomainChallenge for Published {
    async fn check(&self, challenge: &Challenge) -> Result<(), ChallengeFailure> {
        if self.0.lock().unwrap().contains(&challenge.token) {
            Ok(())
        } else {
            Err(ChallengeFailure::RecordNotFound {
                name: challenge.domain.to_string(),
            })
        }
    }
}

pub struct Harness {
    pub store: InMemoryStore,
    pub client: Client,
    pub a: InstanceId,
    pub b: InstanceId,
    pub published: Published,
    pub router: axum::Router,
}

pub const LIMIT: usize = 4096;

pub async fn harness() -> Harness {
    let store = InMemoryStore::new();
    let ctx = fixtures::context();
    let mut ids = Vec::new();
    for (name, host) in [("A", "a.example.com"), ("B", "b.example.com")] {
        let id = run(&store, &ctx, &AddInstance { name: name.into() })
            .await
            .unwrap();
        run(
            &store,
            &ctx,
            &AddInstanceDomain {
                instance_id: id.clone(),
                domain: host.into(),
                generated: true,
            },
        )
        .await
        .unwrap();
        ids.push(id);
    }
    let published = Published::default();
    let api = Api {
        factory: Arc::new(store.clone()),
        events: Arc::new(store.event_reader()),
        hosts: Arc::new(RepositoryHosts(Arc::new(store.clone()))),
        checker: Arc::new(published.clone()),
        challenge: ChallengeSettings {
            prefix: "tenancy".into(),
            lifetime: Duration::from_secs(3600),
        },
        clock: Arc::new(SteppingClock::default()),
        ids: Arc::new(SequentialIds::with_prefix("org")),
        tokens: Arc::new(OsTokens),
        page_tokens: PageTokens::new(vec![9u8; 32]).unwrap(),
    };
    let entry = |name: &str, instance: Option<&InstanceId>| TokenEntry {
        name: name.into(),
        sha256: token_digest(name),
        instance_id: instance.map(|i| i.as_str().to_owned()),
    };
    let tokens = ApiTokens::new(&[
        entry("sys", None),
        entry("a-token", Some(&ids[0])),
        entry("b-token", Some(&ids[1])),
    ])
    .unwrap();
    let (addr, router) = serve(api, tokens).await;
    Harness {
        store,
        client: Client { addr },
        a: ids[0].clone(),
        b: ids[1].clone(),
        published,
        router,
    }
}

/// Serves `api` on 127.0.0.1 (a free port).
pub async fn serve(api: Api, tokens: ApiTokens) -> (SocketAddr, axum::Router) {
    let router = router(api, tokens, LIMIT).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = router.clone();
    tokio::spawn(async move { axum::serve(tenancy_api::listener(listener), served).await });
    (addr, router)
}

/// A client of a served API.
#[derive(Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    pub async fn channel(&self, host: &str) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .origin(format!("http://{host}").parse().unwrap())
            .connect()
            .await
            .unwrap()
    }

    pub async fn json(
        &self,
        host: &str,
        token: Option<&str>,
        method: &str,
        body: &Value,
    ) -> (u16, Value) {
        let (status, text) = self
            .post(
                host,
                token,
                method,
                "application/json",
                body.to_string().as_bytes(),
            )
            .await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(
        &self,
        host: &str,
        token: Option<&str>,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

/// The harness is a client of its server.
impl std::ops::Deref for Harness {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Adds `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}
