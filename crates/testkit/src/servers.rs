//! Local servers on loopback that domain verification talks to in tests: a DNS server
//! answering from a table the test fills, and an HTTP server serving files the test puts.
//! Nothing here reaches the internet.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[derive(Debug, Clone)]
enum DnsAnswer {
    Records(Vec<RData>),
    /// Never answer: the client times out.
    Silent,
}

/// An authoritative-looking DNS server on `127.0.0.1` (UDP). Unknown names get NXDOMAIN.
#[derive(Debug)]
pub struct LocalDns {
    address: SocketAddr,
    table: Arc<Mutex<HashMap<(String, RecordType), DnsAnswer>>>,
    queries: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl LocalDns {
    /// A DNS server on a free UDP port of 127.0.0.1, answering no name until told.
    pub async fn start() -> std::io::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = socket.local_addr()?;
        let table: Arc<Mutex<HashMap<(String, RecordType), DnsAnswer>>> = Arc::default();
        let queries: Arc<Mutex<Vec<String>>> = Arc::default();
        let (t, q) = (table.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let Some(reply) = answer(&request, &t, &q) else {
                    continue;
                };
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        Ok(Self {
            address,
            table,
            queries,
            task,
        })
    }

    /// Where the server listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Replaces the TXT records of `name` (each value one record).
    pub fn set_txt(&self, name: &str, values: &[&str]) {
        let records = values
            .iter()
            .map(|v| RData::TXT(TXT::new(vec![(*v).to_owned()])))
            .collect();
        lock(&self.table).insert((key(name), RecordType::TXT), DnsAnswer::Records(records));
    }

    /// Replaces the A records of `name`.
    pub fn set_a(&self, name: &str, addresses: &[Ipv4Addr]) {
        let records = addresses.iter().map(|a| RData::A(A(*a))).collect();
        lock(&self.table).insert((key(name), RecordType::A), DnsAnswer::Records(records));
    }

    /// Queries of `name` (TXT) get no answer at all.
    pub fn set_silent(&self, name: &str) {
        lock(&self.table).insert((key(name), RecordType::TXT), DnsAnswer::Silent);
    }

    /// Names asked so far, in order.
    pub fn queries(&self) -> Vec<String> {
        lock(&self.queries).clone()
    }
}

impl Drop for LocalDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(
    request: &Message,
    table: &Mutex<HashMap<(String, RecordType), DnsAnswer>>,
    queries: &Mutex<Vec<String>>,
) -> Option<Message> {
    let query = request.queries.first()?;
    let name = key(&query.name().to_ascii());
    lock(queries).push(name.clone());
    let found = lock(table)
        .get(&(name.clone(), query.query_type()))
        .cloned();
    let name_exists = lock(table).keys().any(|(n, _)| *n == name);
    let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(query.clone());
    match found {
        Some(DnsAnswer::Silent) => return None,
        Some(DnsAnswer::Records(records)) => {
            let owner = Name::from_ascii(format!("{name}.")).ok()?;
            for rdata in records {
                reply.add_answer(Record::from_rdata(owner.clone(), 60, rdata));
            }
        }
        // The name exists with other types: an empty answer (NODATA).
        None if name_exists => {}
        None => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    Some(reply)
}

#[derive(Debug, Clone)]
enum HttpAnswer {
    File {
        status: u16,
        body: Vec<u8>,
    },
    /// Accept and never answer.
    Hang,
}

/// A minimal HTTP/1.1 server on `127.0.0.1`: GET of a path the test put returns it; any
/// other path is 404.
#[derive(Debug)]
pub struct LocalHttp {
    address: SocketAddr,
    files: Arc<Mutex<HashMap<String, HttpAnswer>>>,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl LocalHttp {
    /// An HTTP server on a free port of 127.0.0.1, serving no file until told.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let files: Arc<Mutex<HashMap<String, HttpAnswer>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (f, r) = (files.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (f, r) = (f.clone(), r.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    lock(&r).push(path.clone());
                    let found = lock(&f).get(&path).cloned();
                    let (status, body) = match found {
                        Some(HttpAnswer::Hang) => {
                            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                            return;
                        }
                        Some(HttpAnswer::File { status, body }) => (status, body),
                        None => (404, b"not found".to_vec()),
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(Self {
            address,
            files,
            requests,
            task,
        })
    }

    /// Where the server listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves `body` with status 200 at `path`.
    pub fn put(&self, path: &str, body: &[u8]) {
        self.put_status(path, 200, body);
    }

    /// Answers `status` with `body` at `path`.
    pub fn put_status(&self, path: &str, status: u16, body: &[u8]) {
        let answer = HttpAnswer::File {
            status,
            body: body.to_vec(),
        };
        lock(&self.files).insert(path.to_owned(), answer);
    }

    /// Requests of `path` are accepted and never answered.
    pub fn hang(&self, path: &str) {
        lock(&self.files).insert(path.to_owned(), HttpAnswer::Hang);
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.requests).clone()
    }
}

impl Drop for LocalHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}
