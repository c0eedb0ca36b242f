//! H3, L1, L9 (configuration fails closed): an unknown key anywhere is an error naming it;
//! every value is checked before anything connects or binds; the tokens' names and scopes
//! are logged at start, never a token or its digest.

use std::process::Stdio;

use tenancy_testkit::db::TestDatabase;

use crate::support::{INSTANCE_TOKEN, config, tempfile, tenancy, two_instances};

/// A database nothing listens on: a check that passes would fail at connecting instead.
const NOWHERE: &str = "postgres://nobody@127.0.0.1:1/none";

fn refused(content: &str, env: &[(&str, &str)]) -> String {
    let file = tempfile(content);
    let out = tenancy()
        .args(["--database-url", NOWHERE, "--config"])
        .arg(&file)
        .arg("start")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{content:?} was accepted");
    let content = content.to_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("listening"),
        "bound before checking: {stdout}"
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("cannot connect"),
        "{content:?} checked too late: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn unknown_keys_are_refused_wherever_they_are() {
    let digest = tenancy_api::auth::token_digest(INSTANCE_TOKEN);
    // H3: the sample (`instance` for `instance_id` made an instance token a system token).
    let typo =
        format!("[[api.tokens]]\nname = \"a\"\nsha256 = \"{digest}\"\ninstance = \"acme\"\n");
    assert!(refused(&typo, &[]).contains("instance"));
    for (content, key) in [
        ("listn = \"0.0.0.0:1\"\n", "listn"),
        ("[verfication]\nresolver = \"8.8.8.8:53\"\n", "verfication"),
        ("[apii]\n", "apii"),
        ("[projection]\nworker = 2\n", "worker"),
        ("[verification]\nresolvr = \"8.8.8.8:53\"\n", "resolvr"),
        ("[api]\npage_tokn_key = \"x\"\n", "page_tokn_key"),
    ] {
        let err = refused(content, &[]);
        assert!(err.contains(key), "{key}: {err}");
    }
    let err = refused("", &[("TENANCY_LISTN", "0.0.0.0:1")]);
    assert!(err.contains("listn"), "{err}");
    // A list variable is split by tenancy, and each entry checked.
    let err = refused(
        "",
        &[(
            "TENANCY_READ_DATABASE_URLS",
            "postgres://r1@127.0.0.1:1/a,nonsense",
        )],
    );
    assert!(err.contains("read_database_urls[1]"), "{err}");
}

#[test]
fn every_value_is_checked_before_binding_and_named() {
    for (content, key) in [
        ("[verification]\nprefix = \"../x\"\n", "verification.prefix"),
        (
            "[verification]\ntimeout_ms = 0\n",
            "verification.timeout_ms",
        ),
        (
            "[verification]\nmax_body_bytes = 0\n",
            "verification.max_body_bytes",
        ),
        ("[projection]\nworkers = 0\n", "projection.workers"),
        ("[projection]\nbatch_size = 0\n", "projection.batch_size"),
        (
            "[projection]\npoll_interval_ms = 0\n",
            "projection.poll_interval_ms",
        ),
        ("[api]\npage_token_key = \"short\"\n", "api.page_token_key"),
        ("[api]\nmax_request_bytes = 1\n", "api.max_request_bytes"),
        (
            "read_database_urls = [\"mysql://x@127.0.0.1/db\"]\n",
            "read_database_urls[0]",
        ),
        ("[replicas]\nmax_lag_ms = 0\n", "replicas.max_lag_ms"),
        (
            "[replicas]\ncheck_interval_ms = 0\n",
            "replicas.check_interval_ms",
        ),
        ("[replicas]\nmax_lag = 5\n", "max_lag"),
        ("listen = \"nonsense\"\n", "listen"),
        ("relational_schema = \"Bad-Name\"\n", "relational_schema"),
        (
            "[[api.tokens]]\nname = \"x\"\nsha256 = \"abc\"\n",
            "api.tokens",
        ),
    ] {
        let err = refused(content, &[]);
        assert!(err.contains(key), "{key}: {err}");
    }
    // The short key itself is never printed.
    assert!(!refused("[api]\npage_token_key = \"short-secret\"\n", &[]).contains("short-secret"));
}

#[tokio::test]
async fn each_token_name_and_scope_is_logged_at_start_never_the_token() {
    let db = TestDatabase::fresh().await.unwrap();
    let (a, _) = two_instances(&db).await;
    let file = tempfile(&config(&a, ""));
    let port = crate::support::free_port();
    let mut child = crate::common::tenancy_start(&db.url(), port)
        .arg("--config")
        .arg(&file)
        .env("TENANCY_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::common::wait_listening(port).await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let line = |name: &str| {
        log.lines()
            .find(|l| l.contains("API token") && l.contains(name))
            .map(str::to_owned)
    };
    let ops = line("ops").unwrap_or_else(|| panic!("no line for ops: {log}"));
    assert!(ops.contains("system"), "{ops}");
    let admin = line("a-admin").unwrap_or_else(|| panic!("no line for a-admin: {log}"));
    assert!(admin.contains("instance") && admin.contains(&a), "{admin}");
    for secret in [
        crate::support::SYSTEM_TOKEN.to_owned(),
        INSTANCE_TOKEN.to_owned(),
        tenancy_api::auth::token_digest(INSTANCE_TOKEN),
        tenancy_api::auth::token_digest(crate::support::SYSTEM_TOKEN),
    ] {
        assert!(!log.contains(&secret), "a secret in the log");
    }
}
