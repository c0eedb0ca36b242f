//! A private PostgreSQL cluster started from the server binaries installed on the machine
//! (`initdb` + `pg_ctl`), on a free loopback port. PostgreSQL refuses to run as root, so a
//! root process runs the server binaries as the `postgres` system user.
//!
//! Binaries are found via `PG_BINDIR`, `pg_config --bindir`, or the newest
//! `/usr/lib/postgresql/*/bin`.

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Why the embedded cluster could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries found (looked at PG_BINDIR, `pg_config --bindir` and /usr/lib/postgresql/*/bin); \
         set PG_BINDIR to the directory holding initdb and pg_ctl, install the distribution's PostgreSQL server package \
         (e.g. `apt-get install postgresql`), or set DATABASE_URL to an existing server"
    )]
    /// initdb and pg_ctl are not installed where tenancy looks.
    NoBinaries,
    #[error("running as root, but there is no `postgres` system user to run the server as")]
    /// PostgreSQL refuses to run as root and there is no user to run it as.
    NoPostgresUser,
    /// A step of starting or stopping the cluster failed.
    #[error("{step} failed: {detail}")]
    Step {
        /// Which step (`initdb`, `pg_ctl start`, ...).
        step: &'static str,
        /// What it printed, or why it could not run.
        detail: String,
    },
}

fn step(step: &'static str) -> impl Fn(std::io::Error) -> EmbeddedError {
    move |e| EmbeddedError::Step {
        step,
        detail: e.to_string(),
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn find_bindir() -> Result<PathBuf, EmbeddedError> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PG_BINDIR").map(PathBuf::from) {
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(EmbeddedError::NoBinaries)
        };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    candidates.sort();
    candidates
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(EmbeddedError::NoBinaries)
}

/// The uid and gid to run the server as when this process is root.
fn run_as() -> Result<Option<(u32, u32)>, EmbeddedError> {
    let uid = fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1);
    if uid != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(step("reading /etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .map(Some)
        .ok_or(EmbeddedError::NoPostgresUser)
}

/// A cluster in `data_dir` (created on first use), serving 127.0.0.1:`port`.
#[derive(Debug, Clone)]
pub struct EmbeddedCluster {
    bindir: PathBuf,
    root: PathBuf,
    run_as: Option<(u32, u32)>,
    port: u16,
    started: bool,
    /// The server options it was started with (`start_again` reuses them).
    options: String,
}

impl EmbeddedCluster {
    /// Starts (or reuses, if already running) the cluster under `root`, guarded by a file
    /// lock so that concurrent test processes share one server. `durable = false` turns
    /// fsync off (tests); the app keeps it on.
    pub fn start(root: &Path, durable: bool) -> Result<Self, EmbeddedError> {
        let bindir = find_bindir()?;
        let run_as = run_as()?;
        fs::create_dir_all(root).map_err(step("creating the cluster directory"))?;
        let lock = File::create(root.join("lock")).map_err(step("creating the lock file"))?;
        lock.lock().map_err(step("locking the cluster directory"))?;
        let mut cluster = Self {
            bindir,
            root: root.to_owned(),
            run_as,
            port: 0,
            started: false,
            options: String::new(),
        };
        let data = cluster.data_dir();
        if !data.join("PG_VERSION").exists() {
            cluster.init(durable)?;
        }
        let port_file = root.join("port");
        if cluster.is_running()
            && let Some(port) = fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
        {
            cluster.port = port;
            return Ok(cluster);
        }
        cluster.port = free_port()?;
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            cluster.port,
            data.display()
        );
        if !durable {
            options.push_str(" -F -c synchronous_commit=off -c full_page_writes=off");
        }
        cluster.options = options;
        cluster.start_again()?;
        fs::write(&port_file, cluster.port.to_string()).map_err(step("writing the port file"))?;
        cluster.started = true;
        Ok(cluster)
    }

    /// A streaming replica (hot standby) of `primary` under `root`: a base backup of it
    /// (`pg_basebackup -R`), started on a port of its own with `extra` server options
    /// (e.g. `-c recovery_min_apply_delay=300ms`). For tests of reads on replicas.
    pub fn replica_of(primary: &Self, root: &Path, extra: &str) -> Result<Self, EmbeddedError> {
        fs::create_dir_all(root).map_err(step("creating the replica directory"))?;
        let mut replica = Self {
            bindir: primary.bindir.clone(),
            root: root.to_owned(),
            run_as: primary.run_as,
            port: free_port()?,
            started: false,
            options: String::new(),
        };
        if let Some((uid, gid)) = replica.run_as {
            std::os::unix::fs::chown(root, Some(uid), Some(gid))
                .map_err(step("handing the replica directory to postgres"))?;
        }
        let out = replica
            .command("pg_basebackup")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(replica.data_dir())
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .output()
            .map_err(step("running pg_basebackup"))?;
        check("pg_basebackup", &out)?;
        replica.options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200 -c hot_standby=on -F {extra}",
            replica.port,
            replica.data_dir().display()
        );
        replica.start_again()?;
        fs::write(root.join("port"), replica.port.to_string())
            .map_err(step("writing the port file"))?;
        replica.started = true;
        Ok(replica)
    }

    /// Starts a stopped server again, with the options and port it had.
    pub fn start_again(&self) -> Result<(), EmbeddedError> {
        let log = self.root.join("server.log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &log.to_string_lossy(),
            "-o",
            &self.options,
        ])
    }

    /// Promotes a replica to a primary of its own (it stops following).
    pub fn promote(&self) -> Result<(), EmbeddedError> {
        self.pg_ctl(&["promote", "-w", "-t", "60"])
    }

    /// Stops the cluster under `root` if it runs (fast shutdown).
    pub fn stop_at(root: &Path) -> Result<(), EmbeddedError> {
        let cluster = Self {
            bindir: find_bindir()?,
            root: root.to_owned(),
            run_as: run_as()?,
            port: 0,
            started: false,
            options: String::new(),
        };
        if cluster.is_running() {
            cluster.pg_ctl(&["stop", "-m", "fast", "-w"])?;
        }
        Ok(())
    }

    /// Restarts the server with the same options and port (pg_ctl keeps them).
    pub fn restart(&self) -> Result<(), EmbeddedError> {
        // The log file matters: without it the new server writes to pg_ctl's pipes, and
        // waiting for pg_ctl's output would wait for the server to exit.
        let log = self.root.join("server.log");
        self.pg_ctl(&[
            "restart",
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "-l",
            &log.to_string_lossy(),
        ])
    }

    /// Stops the server (fast shutdown: open sessions are ended) and waits for it.
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"])
    }

    /// A URL for the `postgres` database, as the `postgres` superuser (trust auth on
    /// loopback only).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Whether this call started the server (rather than finding it running).
    pub fn started_here(&self) -> bool {
        self.started
    }

    /// A URL for database `name` on this cluster.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (`postmaster.pid` names the server's process).
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .args(["status", "-D"])
            .arg(self.data_dir())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// `durable = false`: no fsync of the new files either (a test cluster).
    fn init(&self, durable: bool) -> Result<(), EmbeddedError> {
        let data = self.data_dir();
        fs::create_dir_all(&data).map_err(step("creating the data directory"))?;
        if let Some((uid, gid)) = self.run_as {
            for dir in [&self.root, &data] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                    .map_err(step("handing the data directory to postgres"))?;
            }
        }
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ])
            .args((!durable).then_some("--no-sync"))
            .output()
            .map_err(step("running initdb"))?;
        check("initdb", &out)
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), EmbeddedError> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(args)
            .output()
            .map_err(step("running pg_ctl"))?;
        check("pg_ctl", &out)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bindir.join(program));
        command.current_dir(&self.root);
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }
}

/// The default data directory of the app's embedded PostgreSQL: `/var/lib/tenancy` when
/// running as root (the server runs as the `postgres` user, which cannot enter root's
/// home), else `$XDG_DATA_HOME/tenancy` (or `~/.local/share/tenancy`).
pub fn default_data_dir() -> PathBuf {
    let uid = fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1);
    if uid == 0 {
        return PathBuf::from("/var/lib/tenancy");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("tenancy")
}

/// Creates database `name` on the server at `server_url` unless it exists.
pub async fn ensure_database(server_url: &str, name: &str) -> Result<(), tenancy_core::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server_url)
        .await
        .map_err(crate::on_constraint)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .map_err(crate::on_constraint)?;
    if !exists {
        // Identifiers cannot be bound; the name is quoted and comes from the caller's code.
        let quoted = name.replace('"', "\"\"");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\"")))
            .execute(&mut conn)
            .await
            .map_err(crate::on_constraint)?;
    }
    let _ = conn.close().await;
    Ok(())
}

fn check(step: &'static str, out: &Output) -> Result<(), EmbeddedError> {
    if out.status.success() {
        Ok(())
    } else {
        Err(EmbeddedError::Step {
            step,
            detail: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

fn free_port() -> Result<u16, EmbeddedError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(step("finding a free port"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(step("finding a free port"))
}
