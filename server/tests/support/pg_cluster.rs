//! A throwaway PostgreSQL cluster for tests: a real server (Debian's PostgreSQL 15 package,
//! installed by `make deps`), initialised in a temporary folder, listening on a free loopback
//! port, and stopped by its PID at the end. No Docker, and never the machine's own cluster.
//!
//! Used by the storage tests (one cluster per test binary, one fresh database per test) and by
//! the binary tests (a cluster of their own, which they stop to see the console notice).
//! PostgreSQL refuses to run as root: as root, initdb and the server run as the `postgres`
//! user the Debian package creates.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where PostgreSQL's programs are looked for, first found wins; `OFFBOARD_PG_BIN` overrides.
const BIN_DIRS: &[&str] = &["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"];

/// The superuser the cluster is created with (trust authentication, loopback only).
const USER: &str = "offboard";

pub struct PgCluster {
    port: u16,
    /// The temporary folder holding the data directory, the socket and the log.
    dir: PathBuf,
    server: Mutex<Option<Child>>,
    /// Stops the server if this process dies without stopping it (SIGKILL, a CI timeout).
    watchdog: Mutex<Option<Child>>,
}

/// Why no cluster could be started, in words that say what to install or check.
fn fail(what: &str, detail: impl std::fmt::Display) -> String {
    format!(
        "the PostgreSQL tests need a real PostgreSQL server and could not start one: {what}: \
         {detail}. Install it with `make deps` (Debian package postgresql-15), or point \
         OFFBOARD_PG_BIN at a folder holding initdb and postgres."
    )
}

fn bin_dir() -> Result<PathBuf, String> {
    let wanted = std::env::var_os("OFFBOARD_PG_BIN").map(PathBuf::from);
    let candidates = wanted.into_iter().chain(BIN_DIRS.iter().map(PathBuf::from));
    for dir in candidates {
        if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
            return Ok(dir);
        }
    }
    Err(fail(
        "initdb was not found",
        format!("looked in OFFBOARD_PG_BIN and {}", BIN_DIRS.join(", ")),
    ))
}

/// The path of PostgreSQL's client program `name` (pg_dump, pg_restore…), from the folder the
/// cluster's programs are found in.
pub fn program(name: &str) -> Result<PathBuf, String> {
    bin_dir().map(|dir| dir.join(name))
}

/// The unprivileged account to run as when we are root: (uid, gid).
fn run_as() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").map_err(|e| fail("user name", e))?;
    // SAFETY: `name` is a valid C string; the returned record is read before any other
    // getpw* call could reuse it.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(fail(
            "running as root, and there is no `postgres` user to run PostgreSQL as",
            "the Debian package creates it",
        ));
    }
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some((uid, gid)))
}

fn command(program: PathBuf, user: Option<(u32, u32)>, dir: &Path) -> Command {
    let mut command = Command::new(program);
    // A folder the unprivileged user can enter (the test's own may be root's).
    command.current_dir(dir);
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt;
        // std drops root's supplementary groups too when it changes the uid.
        command.uid(uid).gid(gid);
    }
    command.env_remove("PGDATA").env("LC_ALL", "C.UTF-8");
    command
}

fn free_port() -> Result<u16, String> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| fail("no free port", e))?;
    socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| fail("no free port", e))
}

impl PgCluster {
    /// Initialises a new cluster in a temporary folder and starts it; waits until it accepts
    /// connections.
    pub fn start() -> Result<PgCluster, String> {
        let bin = bin_dir()?;
        let user = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("offboard-pg-")
            .tempdir()
            .map_err(|e| fail("no temporary folder", e))?
            .keep();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| fail("could not hand the temporary folder to `postgres`", e))?;
        }
        let data = dir.join("data");
        let init = command(bin.join("initdb"), user, &dir)
            .arg("--pgdata")
            .arg(&data)
            .args(["--username", USER, "--auth", "trust", "--encoding", "UTF8"])
            .args(["--no-sync", "--no-instructions"])
            .output()
            .map_err(|e| fail("initdb could not be run", e))?;
        if !init.status.success() {
            let _ = fs::remove_dir_all(&dir);
            return Err(fail(
                "initdb failed",
                String::from_utf8_lossy(&init.stderr).trim(),
            ));
        }
        let port = free_port()?;
        let log = fs::File::create(dir.join("postgres.log"))
            .map_err(|e| fail("could not create the server log", e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| fail("could not create the server log", e))?;
        let server = command(bin.join("postgres"), user, &dir)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            // A test cluster: nothing here must survive a power cut.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| fail("postgres could not be run", e))?;
        let watchdog = watchdog(server.id(), &dir);
        let cluster = PgCluster {
            port,
            dir,
            server: Mutex::new(Some(server)),
            watchdog: Mutex::new(watchdog),
        };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Waits for the server to write "ready" in its pid file (it accepts connections then).
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let pid_file = self.dir.join("data").join("postmaster.pid");
        loop {
            if let Ok(text) = fs::read_to_string(&pid_file) {
                if text.lines().any(|l| l.trim() == "ready") {
                    return Ok(());
                }
            }
            let exited = match self.server.lock() {
                Ok(mut server) => server
                    .as_mut()
                    .map(|s| matches!(s.try_wait(), Ok(Some(_))))
                    .unwrap_or(true),
                Err(_) => true,
            };
            if exited || Instant::now() > deadline {
                let log = fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
                self.stop();
                return Err(fail(
                    if exited {
                        "the server exited at start"
                    } else {
                        "the server was not ready within 60 s"
                    },
                    log.trim(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new empty database and returns its URL: each test gets its own.
    pub async fn fresh_database(&self) -> String {
        use sqlx::Connection;
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("could not connect to the test cluster: {e}"));
        sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("could not create database {name}: {e}"));
        let _ = admin.close().await;
        self.url(&name)
    }

    /// Stops the server by its PID (a fast shutdown: sessions are ended) and waits for it;
    /// removes the folder. Stopping twice is harmless.
    pub fn stop(&self) {
        // The watchdog first: once the server is reaped its PID could be someone else's.
        if let Some(mut watchdog) = take(&self.watchdog) {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Some(mut server) = take(&self.server) {
            // SIGINT is PostgreSQL's "fast shutdown".
            // SAFETY: kill with a PID we spawned and have not yet reaped.
            unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(server.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn take(slot: &Mutex<Option<Child>>) -> Option<Child> {
    match slot.lock() {
        Ok(mut child) => child.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    }
}

/// A shell loop that waits for this process to end and then stops the server (by its PID)
/// and removes its folder: a test binary killed before its exit handler ran leaves nothing
/// running. Without `sh` there is no watchdog, only the exit handler.
fn watchdog(server: u32, dir: &Path) -> Option<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
               kill -INT "$2" 2>/dev/null; sleep 10; kill -KILL "$2" 2>/dev/null; rm -rf "$3""#,
        )
        .arg("offboard-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(server.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();

/// The test binary's one cluster, started on first use and stopped when the binary exits
/// (statics are never dropped, so an exit handler stops it). Panics with what is missing when
/// no cluster can be started: PostgreSQL tests fail, they are never skipped.
pub fn shared() -> &'static PgCluster {
    let cluster = SHARED.get_or_init(|| {
        let started = PgCluster::start();
        if started.is_ok() {
            // SAFETY: registers a plain function; it runs once, at exit.
            unsafe { libc::atexit(stop_shared) };
        }
        started
    });
    match cluster {
        Ok(cluster) => cluster,
        Err(why) => panic!("{why}"),
    }
}

extern "C" fn stop_shared() {
    if let Some(Ok(cluster)) = SHARED.get() {
        cluster.stop();
    }
}
