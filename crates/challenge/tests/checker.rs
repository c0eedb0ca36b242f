//! The two adapters against real servers on loopback (started by each test).
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::net::Ipv4Addr;
use std::time::Duration;

use tenancy_challenge::{ChallengeConfig, Checker, HttpScheme};
use tenancy_core::challenge::{Challenge, ChallengeFailure, DomainChallenge};
use tenancy_core::model::ValidationType;
use tenancy_core::value::DomainName;
use tenancy_testkit::servers::{LocalDns, LocalHttp};

const TOKEN: &str = "abcdefghijklmnopqrstuvwxyz234567";

fn challenge(domain: &str, validation_type: ValidationType) -> Challenge {
    Challenge {
        // parse_stored: the adapter must hold even for a name stored before the rule
        // against IP-shaped domains (`DomainName::parse` refuses those now).
        domain: DomainName::parse_stored(domain).unwrap(),
        validation_type,
        token: TOKEN.into(),
    }
}

fn config(dns: &LocalDns, http: Option<&LocalHttp>, allow_private: bool) -> ChallengeConfig {
    ChallengeConfig {
        resolver: Some(dns.address()),
        timeout: Duration::from_millis(400),
        http_scheme: HttpScheme::Http,
        http_port: http.map(|h| h.address().port()),
        allow_private_targets: allow_private,
        ..ChallengeConfig::default()
    }
}

#[tokio::test]
async fn dns_finds_the_token_among_the_records_and_names_what_else_it_found() {
    let dns = LocalDns::start().await.unwrap();
    let checker = Checker::new(config(&dns, None, false)).unwrap();
    let c = challenge("Acme.example", ValidationType::Dns);

    let missing = checker.check(&c).await.unwrap_err();
    assert_eq!(
        missing,
        ChallengeFailure::RecordNotFound {
            name: "_zitadel-challenge.acme.example".into()
        }
    );
    assert!(missing.to_string().contains("publish a TXT record"));

    dns.set_txt(
        "_zitadel-challenge.acme.example",
        &["v=spf1 -all", "old-token"],
    );
    let wrong = checker.check(&c).await.unwrap_err();
    assert!(
        matches!(&wrong, ChallengeFailure::Mismatch { found, .. } if found.contains("old-token")),
        "{wrong:?}"
    );

    dns.set_txt("_zitadel-challenge.acme.example", &["v=spf1 -all", TOKEN]);
    checker.check(&c).await.unwrap();
    assert!(
        dns.queries()
            .iter()
            .all(|q| q == "_zitadel-challenge.acme.example")
    );
}

#[tokio::test]
async fn dns_uses_the_configured_prefix_and_reports_a_silent_server_as_a_timeout() {
    let dns = LocalDns::start().await.unwrap();
    let checker = Checker::new(ChallengeConfig {
        prefix: "acme".into(),
        ..config(&dns, None, false)
    })
    .unwrap();
    dns.set_txt("_acme-challenge.acme.example", &[TOKEN]);
    checker
        .check(&challenge("acme.example", ValidationType::Dns))
        .await
        .unwrap();

    dns.set_silent("_acme-challenge.slow.example");
    let failure = checker
        .check(&challenge("slow.example", ValidationType::Dns))
        .await
        .unwrap_err();
    assert!(
        matches!(failure, ChallengeFailure::Timeout { .. }),
        "{failure:?}"
    );
}

#[tokio::test]
async fn http_fetches_the_file_and_tells_missing_wrong_and_oversized_apart() {
    let dns = LocalDns::start().await.unwrap();
    let http = LocalHttp::start().await.unwrap();
    dns.set_a("site.example", &[Ipv4Addr::LOCALHOST]);
    let checker = Checker::new(config(&dns, Some(&http), true)).unwrap();
    let c = challenge("site.example", ValidationType::Http);
    let path = format!("/.well-known/zitadel-challenge/{TOKEN}");

    let missing = checker.check(&c).await.unwrap_err();
    assert!(
        matches!(&missing, ChallengeFailure::FileNotFound { status: 404, url } if url.ends_with(&path)),
        "{missing:?}"
    );

    http.put(&path, b"something else");
    let wrong = checker.check(&c).await.unwrap_err();
    assert!(
        matches!(wrong, ChallengeFailure::Mismatch { .. }),
        "{wrong:?}"
    );

    http.put(&path, &vec![b'x'; 10_000]);
    let large = checker.check(&c).await.unwrap_err();
    assert!(
        matches!(large, ChallengeFailure::TooLarge { limit: 4096, .. }),
        "{large:?}"
    );

    http.put_status(&path, 503, b"");
    let down = checker.check(&c).await.unwrap_err();
    assert!(
        matches!(down, ChallengeFailure::Unreachable { .. }),
        "{down:?}"
    );

    http.put(&path, format!("{TOKEN}\n").as_bytes());
    checker.check(&c).await.unwrap();
    assert!(http.requests().iter().all(|p| *p == path));
}

#[tokio::test]
async fn http_reports_timeouts_and_names_that_do_not_resolve() {
    let dns = LocalDns::start().await.unwrap();
    let http = LocalHttp::start().await.unwrap();
    dns.set_a("slow.example", &[Ipv4Addr::LOCALHOST]);
    http.hang(&format!("/.well-known/zitadel-challenge/{TOKEN}"));
    let checker = Checker::new(config(&dns, Some(&http), true)).unwrap();

    let slow = checker
        .check(&challenge("slow.example", ValidationType::Http))
        .await
        .unwrap_err();
    assert!(matches!(slow, ChallengeFailure::Timeout { .. }), "{slow:?}");

    let nowhere = checker
        .check(&challenge("nowhere.example", ValidationType::Http))
        .await
        .unwrap_err();
    assert!(
        matches!(&nowhere, ChallengeFailure::Unreachable { reason, .. } if reason.contains("does not resolve")),
        "{nowhere:?}"
    );
}

#[tokio::test]
async fn http_refuses_domains_that_resolve_to_internal_addresses() {
    let dns = LocalDns::start().await.unwrap();
    let http = LocalHttp::start().await.unwrap();
    let path = format!("/.well-known/zitadel-challenge/{TOKEN}");
    http.put(&path, TOKEN.as_bytes());
    dns.set_a("internal.example", &[Ipv4Addr::LOCALHOST]);
    dns.set_a("metadata.example", &[Ipv4Addr::new(169, 254, 169, 254)]);
    dns.set_a(
        "mixed.example",
        &[Ipv4Addr::new(93, 184, 216, 34), Ipv4Addr::new(10, 0, 0, 1)],
    );
    let checker = Checker::new(config(&dns, Some(&http), false)).unwrap();

    for (domain, address) in [
        ("internal.example", "127.0.0.1"),
        ("metadata.example", "169.254.169.254"),
        ("mixed.example", "10.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        // H1 of the security review: spellings a URL parser reads as IPv4 addresses.
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("167772161", "10.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
    ] {
        let refused = checker
            .check(&challenge(domain, ValidationType::Http))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, ChallengeFailure::ForbiddenTarget { address: a, .. } if a == address),
            "{domain}: {refused:?}"
        );
    }
    assert!(http.requests().is_empty(), "no request reached the server");
}

/// H1: the caller learns "unreachable", never the transport's error text (no OS error,
/// no TLS detail): a closed port and a server that is not HTTP look the same.
#[tokio::test]
async fn transport_failures_say_unreachable_without_detail() {
    let dns = LocalDns::start().await.unwrap();
    dns.set_a("closed.example", &[Ipv4Addr::LOCALHOST]);
    // A port nobody listens on, and a listener that closes at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let rude = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rude_port = rude.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = rude.accept().await {
            drop(socket);
        }
    });
    let mut reasons = Vec::new();
    for port in [closed_port, rude_port] {
        let checker = Checker::new(ChallengeConfig {
            http_port: Some(port),
            ..config(&dns, None, true)
        })
        .unwrap();
        let failure = checker
            .check(&challenge("closed.example", ValidationType::Http))
            .await
            .unwrap_err();
        let ChallengeFailure::Unreachable { reason, .. } = &failure else {
            panic!("{failure:?}");
        };
        let text = failure.to_string().to_lowercase();
        for leak in ["os error", "refused", "reset", "certificate", "tls", "eof"] {
            assert!(!text.contains(leak), "{leak:?} in {text}");
        }
        reasons.push(reason.clone());
    }
    assert_eq!(
        reasons[0], reasons[1],
        "no oracle between a closed and an open port"
    );
}

#[tokio::test]
async fn bad_settings_are_refused_when_the_checker_is_built() {
    let dns = LocalDns::start().await.unwrap();
    let bad_prefix = ChallengeConfig {
        prefix: "no/slash".into(),
        ..config(&dns, None, false)
    };
    assert!(Checker::new(bad_prefix).is_err());
    let no_time = ChallengeConfig {
        timeout: Duration::ZERO,
        ..config(&dns, None, false)
    };
    assert!(Checker::new(no_time).is_err());
}
