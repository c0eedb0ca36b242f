//! M5 (listener timeouts): a silent connection, a half-sent request head and an idle
//! keep-alive connection are closed after `server.header_read_timeout_ms`; a stopping
//! server waits for calls in flight at most `server.shutdown_timeout_ms`, then exits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use tenancy_testkit::db::TestDatabase;

use crate::support::{ORG, SYSTEM_TOKEN, Server, config, two_instances};

/// Whether the server closed `stream` within `within` (EOF or reset).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_shutdown_is_bounded() {
    let db = TestDatabase::fresh().await.unwrap();
    let (a, _) = two_instances(&db).await;
    let settings = "[server]\nheader_read_timeout_ms = 1000\nshutdown_timeout_ms = 2000\n";
    let mut server = Server::start(&db, &config(&a, settings)).await;
    let port = server.port;

    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 512];
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        idle.read(&mut answer).unwrap() > 0,
        "the first request is answered"
    );
    for (name, stream) in [
        ("silent", &mut silent),
        ("half-sent", &mut half),
        ("idle keep-alive", &mut idle),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(4)),
            "{name} connection still open"
        );
    }

    // A call in flight that never completes (its body never arrives), then SIGTERM.
    let mut stuck = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stuck,
        "POST /{ORG}/AddOrganization HTTP/1.1\r\nHost: a.sec.test\r\nAuthorization: Bearer {SYSTEM_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na"
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    loop {
        if server.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(8),
            "still running {:?} after SIGTERM",
            stopping.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        stopping.elapsed() >= Duration::from_millis(1500),
        "the call in flight was given its time ({:?})",
        stopping.elapsed()
    );
    drop(stuck);
}
