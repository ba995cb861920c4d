//! Runs a real OpenID Connect provider (the npm package `oidc-provider`, through
//! `end2end/oidc/provider.mjs`) on a free loopback port for one test, and plays the browser at
//! its sign-in form. Needs `node` on PATH and `end2end/node_modules` (`cd end2end && npm ci`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The client the provider knows.
pub const CLIENT_ID: &str = "offboard-test";

/// A provider and the real `offboard serve` signing people on with it (on its own port, with
/// `--public-url`), with these flags besides: e.g. `--oidc-allowed-domain example.com`.
pub async fn console_signing_on_with(
    secret: &str,
    data_dir: &std::path::Path,
    extra: &[&str],
) -> (super::console_process::ConsoleProcess, OidcProvider) {
    let port = super::scim2_server::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(secret, &format!("{base}/sign-in/sso/callback"));
    let mut args = vec![
        "--public-url",
        &base,
        "--oidc-issuer",
        provider.issuer(),
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-client-secret",
        secret,
    ];
    args.extend_from_slice(extra);
    let console = super::console_process::ConsoleProcess::start_at(port, data_dir, &args).await;
    (console, provider)
}

/// A running provider; killed (by PID) when dropped, also when the test panics.
pub struct OidcProvider {
    child: Child,
    issuer: String,
    redirect_uri: String,
    log: tempfile::NamedTempFile,
}

impl OidcProvider {
    /// Starts a provider with one confidential client (`CLIENT_ID`, `secret`) that may return to
    /// `redirect_uri`.
    pub fn start(secret: &str, redirect_uri: &str) -> OidcProvider {
        OidcProvider::start_on(secret, redirect_uri, 0, None)
    }

    /// Like [`OidcProvider::start`], on `port` (0: any free port), signing with a fresh key
    /// named `key_id` when given (the provider's own development key otherwise).
    pub fn start_on(
        secret: &str,
        redirect_uri: &str,
        port: u16,
        key_id: Option<&str>,
    ) -> OidcProvider {
        let root = repo_root();
        let script = root.join("end2end/oidc/provider.mjs");
        assert!(
            root.join("end2end/node_modules/oidc-provider").exists(),
            "end2end/node_modules/oidc-provider is missing: run `cd end2end && npm ci`"
        );
        let log = tempfile::NamedTempFile::new().expect("temp log file");
        // Port 0: the provider binds a free port itself and prints it, so no race for a port.
        let mut command = Command::new("node");
        if let Some(kid) = key_id {
            command.env("OIDC_KEY_ID", kid);
        }
        let mut child = command
            .arg(&script)
            .arg(port.to_string())
            .current_dir(root.join("end2end"))
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", secret)
            .env("OIDC_REDIRECT_URI", redirect_uri)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("could not start node (is it on PATH?): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("ready ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let mut provider = OidcProvider {
            child,
            issuer: String::new(),
            redirect_uri: redirect_uri.to_string(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(issuer) => provider.issuer = issuer,
            Err(_) => panic!(
                "the OpenID provider did not start; its output:\n{}",
                provider.log_text()
            ),
        }
        provider
    }

    pub fn port(&self) -> u16 {
        url::Url::parse(&self.issuer)
            .ok()
            .and_then(|u| u.port())
            .expect("the issuer has a port")
    }

    /// `http://127.0.0.1:PORT`, exactly as the provider names itself.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Plays the browser from `authorize_url` (where `SsoClient::start` sends it) through the
    /// provider's sign-in form as `login`, and returns the URL the provider sends the browser
    /// back to (the console's callback, with `code` and `state`, or `error`).
    /// `abort`: press "cancel" on the sign-in page instead of signing in.
    pub async fn browse(&self, authorize_url: &url::Url, login: &str, abort: bool) -> url::Url {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("browser client");
        let mut request = browser.get(authorize_url.clone());
        let mut at = authorize_url.clone();
        for _ in 0..20 {
            let reply = request.send().await.expect("the provider answers");
            let status = reply.status();
            if status.is_redirection() {
                let location = reply
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .expect("a redirect has a Location");
                let next = at.join(location).expect("a valid Location");
                if next.as_str().starts_with(&self.redirect_uri) {
                    return next;
                }
                request = browser.get(next.clone());
                at = next;
                continue;
            }
            let page = reply.text().await.unwrap_or_default();
            assert!(
                status.is_success(),
                "{status} at {at}: {page}\n{}",
                self.log_text()
            );
            if abort {
                let abort_url = attribute(&page, "<a href=\"", "/abort")
                    .map(|href| at.join(&href).expect("abort link"))
                    .expect("the sign-in page has a cancel link");
                request = browser.get(abort_url.clone());
                at = abort_url;
                continue;
            }
            let (action, mut fields) = form_of(&page)
                .unwrap_or_else(|| panic!("no form on the provider's page at {at}:\n{page}"));
            for (name, value) in fields.iter_mut() {
                match name.as_str() {
                    "login" => *value = login.to_string(),
                    "password" => *value = "any password: test accounts".to_string(),
                    _ => {}
                }
            }
            let target = at.join(&action).expect("form action");
            request = browser.post(target.clone()).form(&fields);
            at = target;
        }
        panic!(
            "the provider never sent the browser back\n{}",
            self.log_text()
        );
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate sits in the repository")
        .to_path_buf()
}

/// The first `start…"` value in `page` that contains `must_contain`.
fn attribute(page: &str, start: &str, must_contain: &str) -> Option<String> {
    page.match_indices(start).find_map(|(i, _)| {
        let rest = &page[i + start.len()..];
        let value = &rest[..rest.find('"')?];
        value
            .contains(must_contain)
            .then(|| value.replace("&amp;", "&"))
    })
}

/// The first form of an HTML page: its action and its inputs (name, value). Enough for the
/// provider's own simple pages, not a general HTML parser.
fn form_of(page: &str) -> Option<(String, Vec<(String, String)>)> {
    let form_at = page.find("<form")?;
    let form = &page[form_at
        ..page[form_at..]
            .find("</form>")
            .map_or(page.len(), |e| form_at + e)];
    let action = attribute(form, "action=\"", "")?;
    let fields = form
        .match_indices("<input")
        .filter_map(|(i, _)| {
            let tag = &form[i..i + form[i..].find('>')?];
            let name = attribute(tag, "name=\"", "")?;
            let value = attribute(tag, "value=\"", "").unwrap_or_default();
            Some((name, value))
        })
        .collect();
    Some((action, fields))
}
