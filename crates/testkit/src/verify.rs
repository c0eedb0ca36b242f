//! The equality every projection test ends with: the tables equal the fold of the
//! events (`tenancy projections verify`).

use tenancy_projection::Engine;

/// Panics with the differences when the tables and the fold of the events differ.
#[allow(clippy::panic, clippy::unwrap_used)] // a test assertion
pub async fn assert_verified(engine: &Engine) {
    let report = match engine.verify().await {
        Ok(report) => report,
        Err(e) => panic!("verify failed: {e}"),
    };
    assert!(
        report.is_equal(),
        "verify found differences:\n{}",
        report.differences.join("\n")
    );
}
