//! A real mail server for one test: `smtp_sink.py` (PyPI aiosmtpd, installed by
//! `make deps-test`) on a loopback port, keeping each message it accepts as JSON in a folder
//! of its own; killed (by PID) when dropped, also when the test panics.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    child: Child,
    pub port: u16,
    folder: tempfile::TempDir,
}

/// The Python that has aiosmtpd: `SMTP_SINK_PYTHON`, else the tests' virtual environment.
pub fn python() -> PathBuf {
    match std::env::var_os("SMTP_SINK_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/offboard/venv-scim/bin/python")
        }
    }
}

impl SmtpSink {
    /// Starts the mail server on `port` (pick one with a free-port helper first, to point a
    /// console at a server that is not there yet).
    pub fn start_on(port: u16) -> SmtpSink {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let folder = tempfile::tempdir().expect("a folder for the mail");
        let child = Command::new(python())
            .arg(&script)
            .arg(port.to_string())
            .arg(folder.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start the mail server ({}): {e}; run `make deps-test`",
                    python().display()
                )
            });
        let mut sink = SmtpSink {
            child,
            port,
            folder,
        };
        assert!(
            super::scim2_server::wait_for_port(&mut sink.child, port, Duration::from_secs(20)),
            "the mail server did not start on {port} (is aiosmtpd installed? `make deps-test`)"
        );
        sink
    }

    /// While on, the server answers every message "451 try again later".
    pub fn refuse(&self, on: bool) {
        let flag = self.folder.path().join("refuse");
        if on {
            std::fs::write(flag, "").expect("refuse flag");
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// Every message kept so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.folder.path())
            .expect("the mail folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("a message")).expect("json")
            })
            .collect()
    }

    /// The messages to `to` whose subject contains `subject`, once there are `n` (failing
    /// after `limit`).
    pub async fn until(&self, to: &str, subject: &str, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let got: Vec<Value> = self
                .messages()
                .into_iter()
                .filter(|m| {
                    m["to"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|a| a == to))
                        && m["subject"].as_str().is_some_and(|s| s.contains(subject))
                })
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{n} mail(s) to {to} about {subject:?} did not arrive; all: {:?}",
                self.messages()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
