//! Runs the project's Stack-shaped `stack-fault-server` binary (a FAKE Stack site, a test
//! double) for one test (killed on drop).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// The bearer token every fault server in the tests accepts.
pub const TOKEN: &str = "smoke-test-token";
/// Where the Enterprise edition serves users.
pub const ENTERPRISE_USERS: &str = "/api/scim/v2/users";

/// A running fault server; killed when dropped so a failing test never leaks a process.
pub struct FaultServer {
    pub child: Child,
    pub base: String,
    pub http: Client,
}

impl FaultServer {
    pub fn start(extra: &[&str]) -> FaultServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stack-fault-server"))
            .args(["--port", "0", "--token", TOKEN])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start stack-fault-server");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut first_line = String::new();
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("read the listening line");
        let base = first_line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
            .to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        FaultServer {
            child,
            base,
            http: Client::builder().no_proxy().build().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn scim(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("SCIM request")
    }

    pub async fn delete(&self, id: &str) -> (StatusCode, String) {
        let reply = self
            .scim(reqwest::Method::DELETE, &format!("{ENTERPRISE_USERS}/{id}"))
            .await;
        let status = reply.status();
        (status, reply.text().await.unwrap())
    }

    pub async fn patch_user_type(&self, users_path: &str, id: &str, role: &str) -> Value {
        let reply = self
            .http
            .patch(self.url(&format!("{users_path}/{id}")))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/scim+json")
            .body(
                json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "userType", "value": role}]
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        reply.json().await.unwrap()
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let reply = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{path}");
        reply.json().await.unwrap()
    }

    pub async fn state(&self) -> Value {
        self.http
            .get(self.url("/_control/state"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The state once `what` holds of it (polled, up to 30 s): waiting for the condition, not
    /// for a guess at how long it takes.
    pub async fn state_once(&self, what: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.state().await;
            if what(&state) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "the site never got there: {state}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The state once no DELETE is in flight: what a pause or a crash left to land has landed.
    pub async fn settled(&self) -> Value {
        self.state_once(|s| s["deletes_in_flight"] == 0).await
    }

    /// Holds every DELETE the site receives (they wait, counted in `deletes_in_flight`) until
    /// [`FaultServer::release_deletes`]: the first piece of a run held on purpose, so what the
    /// test does meanwhile certainly overlaps it.
    pub async fn hold_deletes(&self) {
        self.control("/_control/settings", json!({"hold_deletes": true}))
            .await;
    }

    pub async fn release_deletes(&self) {
        self.control("/_control/settings", json!({"hold_deletes": false}))
            .await;
    }

    /// Watches the site for `window` (an observation, not a synchronisation: the caller waited
    /// for its condition already) and fails as soon as a DELETE is asked for; the last state.
    pub async fn no_delete_during(&self, window: Duration) -> Value {
        let before = self.state().await;
        let sent = before["requests"]["DELETE"].as_u64().unwrap_or(0);
        let until = Instant::now() + window;
        loop {
            let state = self.state().await;
            assert_eq!(
                state["requests"]["DELETE"].as_u64().unwrap_or(0),
                sent,
                "a DELETE was sent while none should be"
            );
            if Instant::now() >= until {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The account IDs the server deleted, from a `/_control/state` snapshot.
pub fn deleted(state: &Value) -> std::collections::BTreeSet<String> {
    state["deleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// No account got more than one DELETE.
pub fn at_most_one_delete_each(state: &Value) {
    for (id, n) in state["delete_requests_by_account"]
        .as_object()
        .into_iter()
        .flatten()
    {
        assert!(n.as_u64().unwrap_or(0) <= 1, "{id} got {n} DELETEs");
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
