//! M1 (host confusion): one host per request. Over HTTP/2 the instance comes from
//! `:authority` and a differing `host` header is refused; over HTTP/1.1 two Host headers
//! or an invalid one are 400, and an absolute-form target's authority wins over Host.

use std::process::Command;
use std::time::Duration;

use tenancy_testkit::db::TestDatabase;

use crate::support::{
    INSTANCE, INSTANCE_TOKEN, SYSTEM_TOKEN, Server, config, has, raw, two_instances,
};

fn http11(port: u16, headers: &str) -> String {
    let body = "{}";
    let request = format!(
        "POST /{INSTANCE}/GetInstance HTTP/1.1\r\n{headers}Authorization: Bearer {SYSTEM_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw(port, request.as_bytes(), Duration::from_secs(5))
}

/// The id of the instance a GetInstance answer (HTTP/1.1 response or the h2 client's
/// output) names.
fn instance_id(response: &str) -> String {
    let body = response
        .split_once("\r\n\r\n")
        .map_or_else(|| response.lines().nth(1).unwrap_or_default(), |(_, b)| b);
    let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
    json["instance"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0)
}

/// HTTP/2 with prior knowledge through Python's h2: `:authority` and `host` as given.
const H2_CLIENT: &str = r#"
import socket, sys, json, h2.connection, h2.config, h2.events
port, token, authority, host = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10)
c = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8", validate_outbound_headers=False))
c.initiate_connection()
headers = [(":method", "POST"), (":scheme", "http"), (":authority", authority),
           (":path", "/tenancy.instance.v2.InstanceService/GetInstance"),
           ("content-type", "application/json"), ("authorization", "Bearer " + token)]
if host:
    headers.append(("host", host))
c.send_headers(1, headers); c.send_data(1, b"{}", end_stream=True); s.sendall(c.data_to_send())
status, body, done = None, b"", False
while not done:
    data = s.recv(65536)
    if not data: break
    for e in c.receive_data(data):
        if isinstance(e, h2.events.ResponseReceived): status = dict(e.headers)[":status"]
        if isinstance(e, h2.events.DataReceived): body += e.data; c.acknowledge_received_data(len(e.data), e.stream_id)
        if isinstance(e, h2.events.StreamEnded): done = True
    s.sendall(c.data_to_send())
print(status); print(body.decode())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_per_request() {
    let db = TestDatabase::fresh().await.unwrap();
    let (a, b) = two_instances(&db).await;
    let server = Server::start(&db, &config(&a, "")).await;
    let port = server.port;

    let ok = http11(port, "Host: a.sec.test\r\n");
    assert_eq!(status(&ok), 200, "{ok}");
    assert_eq!(instance_id(&ok), a);

    let two = http11(port, "Host: a.sec.test\r\nHost: b.sec.test\r\n");
    assert_eq!(status(&two), 400, "{two}");
    let spaced = http11(port, "Host: a.sec.test\r\nhost: a.sec.test\r\n");
    assert_eq!(status(&spaced), 400, "two, even when equal: {spaced}");
    let missing = http11(port, "");
    assert_eq!(status(&missing), 400, "{missing}");
    let non_ascii = http11(port, "Host: l\u{f6}gin.a.sec.test\r\n");
    assert_eq!(status(&non_ascii), 400, "{non_ascii}");
    assert!(non_ascii.contains("Host"), "{non_ascii}");

    // Absolute form: the target's host decides, the Host header is ignored.
    let body = "{}";
    let absolute = format!(
        "POST http://b.sec.test/{INSTANCE}/GetInstance HTTP/1.1\r\nHost: a.sec.test\r\n\
         Authorization: Bearer {SYSTEM_TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw(port, absolute.as_bytes(), Duration::from_secs(5));
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(instance_id(&answer), b, "{answer}");

    if !has("python3", &["-c", "import h2"]) {
        eprintln!("SKIPPED (HTTP/2 part): Python's h2 is not installed (.ci/run installs it)");
        return;
    }
    let h2 = |token: &str, authority: &str, host: &str| {
        let out = Command::new("python3")
            .args(["-c", H2_CLIENT, &port.to_string(), token, authority, host])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // The report's sample: an instance token, :authority of b, host of a.
    let confused = h2(INSTANCE_TOKEN, "b.sec.test", "a.sec.test");
    assert!(confused.starts_with("400"), "{confused}");
    assert_eq!(instance_id(&confused), "", "{confused}");
    let confused = h2(SYSTEM_TOKEN, "b.sec.test", "a.sec.test");
    assert!(confused.starts_with("400"), "{confused}");
    let by_authority = h2(SYSTEM_TOKEN, "b.sec.test", "");
    assert!(by_authority.starts_with("200"), "{by_authority}");
    assert_eq!(instance_id(&by_authority), b);
    let same = h2(SYSTEM_TOKEN, "b.sec.test", "B.sec.test");
    assert!(same.starts_with("200"), "{same}");
    assert_eq!(instance_id(&same), b);
}
