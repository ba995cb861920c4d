//! Runs the real `offboard serve` binary for one test on a free loopback port, with its own
//! data folder; killed (SIGKILL, as a crash would) when dropped or restarted.

use super::scim2_server::free_port;
use reqwest::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ConsoleProcess {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub http: Client,
}

impl ConsoleProcess {
    pub async fn start(data_dir: &Path) -> ConsoleProcess {
        ConsoleProcess::start_with(data_dir, &[]).await
    }

    /// As [`ConsoleProcess::start`], with more flags for `offboard serve`. The fault servers
    /// speak plain http on loopback, which the console refuses unless told otherwise.
    pub async fn start_with(data_dir: &Path, extra_args: &[&str]) -> ConsoleProcess {
        let mut args = vec!["--allow-http-loopback-sites"];
        args.extend_from_slice(extra_args);
        ConsoleProcess::start_with_only(data_dir, &args).await
    }

    /// `offboard serve` with exactly these flags (besides address and folders): without
    /// `--allow-http-loopback-sites`, as a hosted console runs.
    pub async fn start_with_only(data_dir: &Path, extra_args: &[&str]) -> ConsoleProcess {
        let console = ConsoleProcess::launch(data_dir, extra_args);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = console.http.get(console.url("/healthz")).send().await {
                if reply.status().is_success() {
                    return console;
                }
            }
            assert!(
                Instant::now() < deadline,
                "offboard did not answer; log:\n{}",
                console.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts `offboard serve` with exactly these flags and returns at once, without waiting
    /// for it to answer (to watch it start).
    pub fn launch(data_dir: &Path, extra_args: &[&str]) -> ConsoleProcess {
        let port = free_port();
        let log = data_dir.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--site-root")
            .arg(data_dir.with_extension("site"))
            .args(extra_args)
            .env_remove("OFFBOARD_SECRET_KEY")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start offboard serve");
        ConsoleProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            log,
            http: Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Saves the Connect form through its server function, with the fault server's token;
    /// the connection check's verdict (`{ok, kind, message, user_count}`).
    pub async fn save_connection(
        &self,
        site_url: &str,
        scim_base_url: &str,
        operator_email: &str,
    ) -> Value {
        let answer = self
            .call(
                "save_connection",
                &[
                    ("site_url", site_url),
                    ("scim_base_url", scim_base_url),
                    ("token", super::fault_server::TOKEN),
                    ("operator_email", operator_email),
                ],
            )
            .await
            .expect("save_connection");
        let (_view, diagnosis) =
            serde_json::from_value::<(Value, Value)>(answer).expect("view and diagnosis");
        diagnosis
    }

    /// A preview of a pasted list (`text`, with its header line) through the server
    /// function; the preview's summary (`id`, `phrase`, `counts`, …).
    pub async fn preview_text(&self, text: &str, action: &str) -> Value {
        self.call(
            "preview_text",
            &[
                ("file_name", "leavers.csv"),
                ("text", text),
                ("action", action),
                ("demote", "false"),
            ],
        )
        .await
        .expect("preview")
    }

    /// Calls a server function with form fields; Ok(JSON) on success, Err(body) otherwise.
    pub async fn call(&self, name: &str, fields: &[(&str, &str)]) -> Result<Value, String> {
        let reply = self
            .http
            .post(self.url(&format!("/api/{name}")))
            .header("Accept", "application/json")
            .form(fields)
            .send()
            .await
            .expect("server function request");
        let ok = reply.status().is_success();
        let text = reply.text().await.expect("body");
        if ok {
            Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        } else {
            Err(text)
        }
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
