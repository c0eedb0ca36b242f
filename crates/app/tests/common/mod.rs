//! What the binary's integration tests share: the `tenancy` binary with a clean
//! environment, a `tenancy start` on a free loopback port, and the process a test started,
//! killed (SIGKILL) and reaped when dropped.
#![allow(dead_code)] // each test binary uses a part

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `tenancy` binary with no configuration inherited from the environment (no
/// `TENANCY_*` variable but the log filter, here warnings).
pub fn tenancy() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("tenancy"));
    for (name, _) in std::env::vars() {
        if name.starts_with("TENANCY_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("TENANCY_LOG", "warn");
    cmd
}

/// `tenancy start` on `database_url`, listening on 127.0.0.1:`port`, its stdout (the
/// address it listens on) discarded. Callers add a `--config`, settings and output.
pub fn tenancy_start(database_url: &str, port: u16) -> Command {
    let mut cmd = tenancy();
    cmd.args(["start", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", database_url)
        .stdout(Stdio::null());
    cmd
}

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 60 s) until 127.0.0.1:`port` accepts connections.
pub async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tenancy start did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process, killed and reaped when dropped.
pub struct Process(pub Child);

impl Process {
    /// Spawns `command` (a `tenancy start --listen 127.0.0.1:<port>`) and waits until
    /// `port` accepts connections.
    pub async fn listening(command: &mut Command, port: u16) -> Self {
        let process = Self(command.spawn().unwrap());
        wait_listening(port).await;
        process
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
