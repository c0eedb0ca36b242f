//! L5 (Connect interop): `tenancy start` driven by the buf CLI, a client this project did
//! not write: gRPC with server reflection (which needs the token on the reflection calls
//! too: `--reflect-header`), Connect with binary protobuf (buf's only Connect codec, and
//! connect-go's and connect-es's default), and Connect JSON through curl.

use std::process::Command;

use tenancy_testkit::db::TestDatabase;

use crate::support::{INSTANCE_TOKEN, ORG, Server, config, curl, has, instance_a, two_instances};

fn buf(args: &[&str]) -> (bool, String) {
    let out = Command::new("buf").args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buf_curl_over_grpc_with_reflection_and_over_connect() {
    if !has("buf", &["--version"]) || !has("curl", &["--version"]) {
        eprintln!("SKIPPED: the buf CLI or curl is not installed (.ci/run installs them)");
        return;
    }
    let db = TestDatabase::fresh().await.unwrap();
    let (a, _) = two_instances(&db).await;
    let server = Server::start(&db, &config(&a, "")).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let auth = format!("Authorization: Bearer {INSTANCE_TOKEN}");
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/proto");

    // gRPC, the schema found by reflection.
    let (ok, out) = buf(&[
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--reflect-header",
        &auth,
        "-H",
        &auth,
        "-H",
        "Host: a.sec.test",
        "-d",
        r#"{"name": "buf-grpc"}"#,
        &format!("{base}/{ORG}/AddOrganization"),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("organizationId"), "{out}");
    // Without the header on the reflection calls buf cannot see the services.
    let (ok, out) = buf(&[
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "-H",
        &auth,
        "-d",
        "{}",
        &format!("{base}/{ORG}/ListOrganizations"),
    ]);
    assert!(!ok, "{out}");

    // Connect with binary protobuf (buf's Connect codec), over HTTP/1.1 and HTTP/2.
    for extra in [&[][..], &["--http2-prior-knowledge"][..]] {
        let mut args = vec![
            "curl",
            "--protocol",
            "connect",
            "--schema",
            schema,
            "-H",
            &auth,
            "-H",
            "Host: a.sec.test",
        ];
        args.extend_from_slice(extra);
        let url = format!("{base}/{ORG}/ListOrganizations");
        args.extend_from_slice(&[
            "-d",
            r#"{"filters": [{"nameFilter": {"name": "buf-grpc"}}]}"#,
            &url,
        ]);
        let (ok, out) = buf(&args);
        assert!(ok, "{out}");
        assert!(out.contains("buf-grpc"), "{out}");
    }
    // A Connect error reaches buf with its code.
    let (ok, out) = buf(&[
        "curl",
        "--protocol",
        "connect",
        "--schema",
        schema,
        "-H",
        &auth,
        "-H",
        "Host: a.sec.test",
        "-d",
        r#"{"name": ""}"#,
        &format!("{base}/{ORG}/AddOrganization"),
    ]);
    assert!(!ok && out.contains("invalid_argument"), "{out}");

    // Connect JSON.
    let (status, answer) = curl(
        server.port,
        &[&instance_a(), "Host: a.sec.test"],
        &format!("{ORG}/ListOrganizations"),
        "{}",
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer["organizations"].to_string().contains("buf-grpc"));
}
