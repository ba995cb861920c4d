//! Runs the RFC-strict `scim2-server` (PyPI) on a free loopback port for one test, and seeds it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bulk limits the server announces in its ServiceProviderConfig (maxOperations 1000,
/// maxPayloadSize 1 MiB); chunks stay under both with room to spare.
const BULK_MAX_OPERATIONS: usize = 1000;
const BULK_MAX_BYTES: usize = 900 * 1024;

/// A running `scim2-server`; killed (by PID) when dropped, also when the test panics.
pub struct Scim2Server {
    child: Child,
    port: u16,
    token: String,
    log: tempfile::NamedTempFile,
}

impl Scim2Server {
    /// Starts a server that accepts `token` as its bearer token.
    pub fn start(token: &str) -> Scim2Server {
        let bin = binary();
        let mut last_log = String::new();
        // The port is free when picked, but another process may take it before the server
        // binds: try a few ports.
        for _ in 0..3 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().expect("temp log file");
            let child = Command::new(&bin)
                .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
                .args(["--bearer-token", token])
                .stdin(Stdio::null())
                .stdout(log.reopen().expect("log file"))
                .stderr(log.reopen().expect("log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
            let mut server = Scim2Server {
                child,
                port,
                token: token.to_string(),
                log,
            };
            if server.wait_until_listening(Duration::from_secs(20)) {
                return server;
            }
            last_log = server.log_text();
        }
        panic!("scim2-server did not start; its output:\n{last_log}");
    }

    /// `http://127.0.0.1:PORT/v2`: the SCIM base URL (users at `/Users`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The ids the server holds now, read from it directly.
    pub async fn ids(&self) -> std::collections::BTreeSet<String> {
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/Users?count=1000", self.base_url()))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        body["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Creates `n` users (`make(i)` is the User resource for i in 0..n, `schemas` may be
    /// omitted) through `POST /v2/Bulk`, and returns their ids in the order of `i`.
    pub async fn seed_users(
        &self,
        n: usize,
        make: impl Fn(usize) -> serde_json::Value,
    ) -> Vec<String> {
        let client = reqwest::Client::new();
        let mut ids = vec![String::new(); n];
        let mut chunk: Vec<serde_json::Value> = Vec::new();
        let mut chunk_bytes = 0;
        for i in 0..n {
            let mut user = make(i);
            if user.get("schemas").is_none() {
                user["schemas"] = serde_json::json!(["urn:ietf:params:scim:schemas:core:2.0:User"]);
            }
            let op = serde_json::json!({
                "method": "POST", "path": "/Users", "bulkId": i.to_string(), "data": user,
            });
            let op_bytes = op.to_string().len() + 1;
            if !chunk.is_empty()
                && (chunk.len() == BULK_MAX_OPERATIONS || chunk_bytes + op_bytes > BULK_MAX_BYTES)
            {
                self.post_bulk(&client, std::mem::take(&mut chunk), &mut ids)
                    .await;
                chunk_bytes = 0;
            }
            chunk_bytes += op_bytes;
            chunk.push(op);
        }
        if !chunk.is_empty() {
            self.post_bulk(&client, chunk, &mut ids).await;
        }
        ids
    }

    async fn post_bulk(
        &self,
        client: &reqwest::Client,
        operations: Vec<serde_json::Value>,
        ids: &mut [String],
    ) {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": operations,
        });
        let reply = client
            .post(format!("{}/Bulk", self.base_url()))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /Bulk");
        let status = reply.status();
        let text = reply.text().await.expect("Bulk reply body");
        assert!(status.is_success(), "Bulk failed with {status}: {text}");
        let reply: serde_json::Value = serde_json::from_str(&text).expect("Bulk reply is JSON");
        let results = reply["Operations"]
            .as_array()
            .expect("Bulk reply Operations");
        assert_eq!(results.len(), operations.len(), "one result per operation");
        for result in results {
            assert_eq!(
                result["status"], "201",
                "a seeded user was not created: {result}"
            );
            let index: usize = result["bulkId"]
                .as_str()
                .and_then(|b| b.parse().ok())
                .expect("bulkId");
            // The id is the last segment of the created resource's location.
            let location = result["location"].as_str().expect("location");
            ids[index] = location
                .rsplit('/')
                .next()
                .expect("id in location")
                .to_string();
        }
    }

    fn wait_until_listening(&mut self, limit: Duration) -> bool {
        wait_for_port(&mut self.child, self.port, limit)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `SCIM2_SERVER_BIN`, else the venv `make deps-test` creates.
pub fn binary() -> PathBuf {
    let path = match std::env::var_os("SCIM2_SERVER_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/offboard/venv-scim/bin/scim2-server")
        }
    };
    assert!(
        path.exists(),
        "scim2-server not found at {}. Run `make deps-test` (or set SCIM2_SERVER_BIN).",
        path.display()
    );
    path
}

/// Waits until something listens on the loopback `port`; false if `child` exits first or
/// `limit` passes.
pub fn wait_for_port(child: &mut Child, port: u16, limit: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
