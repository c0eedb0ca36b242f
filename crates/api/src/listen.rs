//! Serving a router on a TCP listener with the limits a public listener needs:
//!
//! - **Header-read and idle timeout** (HTTP/1.1): a connection that does not send a whole
//!   request head within `header_read_timeout` — a silent connection, a half-sent request
//!   (slowloris), an idle keep-alive connection — is closed. The same bound applies to the
//!   first bytes of any connection (before its protocol is known).
//! - **HTTP/2 keep-alive**: pings every `http2_keepalive`; a peer that does not answer in
//!   time is disconnected.
//! - **Bounded graceful shutdown**: on shutdown the listener closes, connections finish
//!   the calls they have in flight and close; those still open after `shutdown_timeout`
//!   are dropped.
//!
//! Every connection gets TCP_NODELAY: without it a response written in parts (HTTP/2
//! frames) waits for the client's delayed ACK, 40 ms a page on Linux.

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// The listener's limits (`[server]` of `tenancy start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    /// A connection without a whole request head by then is closed (idle ones too).
    pub header_read_timeout: Duration,
    /// HTTP/2 ping interval; a peer silent for as long is dropped.
    pub http2_keepalive: Duration,
    /// At shutdown, how long calls in flight may finish before connections close.
    pub shutdown_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            http2_keepalive: Duration::from_secs(20),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (bounded).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.http2_keepalive)
        .keep_alive_timeout(config.http2_keepalive);
    let graceful = GracefulShutdown::new();
    // Every connection's task, so that those left at the end of the drain are aborted
    // (with what they hold: the router, its pools and caches).
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            // Reap finished connections so the set stays as small as the open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        connections.spawn(async move {
            // The protocol is read from the first bytes: they are bounded too.
            let mut first = [0u8; 1];
            match tokio::time::timeout(config.header_read_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            after = ?config.shutdown_timeout,
            open = connections.len(),
            "connections still open at the end of the shutdown timeout: closed"
        );
    }
    connections.shutdown().await;
    Ok(())
}
