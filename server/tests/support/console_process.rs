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
    /// Signed in as the first owner ([`FIRST_OWNER`]) once the console is up.
    pub http: Client,
    /// The first owner's session cookie (`offboard_session=…`).
    pub cookie: String,
}

/// The account every started console is set up with: (email, name, password).
pub const FIRST_OWNER: (&str, &str, &str) = (
    "olive@offboard.test",
    "Olive Owner",
    "correct horse battery staple",
);

/// A client that follows no redirects and sends `cookie` (if any) with every request.
pub fn client_with(cookie: Option<&str>) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(cookie) = cookie {
        headers.insert(
            reqwest::header::COOKIE,
            reqwest::header::HeaderValue::from_str(cookie).expect("cookie header"),
        );
    }
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("client")
}

/// The session cookie a response set (`offboard_session=…`), if any.
pub fn session_cookie(reply: &reqwest::Response) -> Option<String> {
    reply
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("offboard_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
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
        ConsoleProcess::start_at(free_port(), data_dir, extra_args).await
    }

    /// `offboard serve` on `port` (for flags that must name it, like `--public-url`), with
    /// exactly these flags besides address and folders; signed in as the first owner.
    pub async fn start_at(port: u16, data_dir: &Path, extra_args: &[&str]) -> ConsoleProcess {
        ConsoleProcess::start_at_with_env(port, data_dir, extra_args, &[]).await
    }

    /// As [`ConsoleProcess::start_with_only`], with these environment variables set for the
    /// process.
    pub async fn start_with_env(
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> ConsoleProcess {
        ConsoleProcess::start_at_with_env(free_port(), data_dir, extra_args, env).await
    }

    async fn start_at_with_env(
        port: u16,
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> ConsoleProcess {
        let database = on_postgres_if_asked(data_dir, extra_args).await;
        let mut args: Vec<&str> = extra_args.to_vec();
        if let Some(url) = &database {
            args.extend(["--database-url", url.as_str()]);
        }
        let extra_args = args.as_slice();
        let mut console = ConsoleProcess::launch_at(port, data_dir, extra_args, env);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = console.http.get(console.url("/healthz")).send().await {
                if reply.status().is_success() {
                    console.set_up_first_owner(extra_args).await;
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
    /// for it to answer (to watch it start) and without signing in
    /// ([`ConsoleProcess::set_up_first_owner`] does, once it answers).
    pub fn launch(data_dir: &Path, extra_args: &[&str]) -> ConsoleProcess {
        ConsoleProcess::launch_at(free_port(), data_dir, extra_args, &[])
    }

    fn launch_at(
        port: u16,
        data_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> ConsoleProcess {
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
            .env_remove("OFFBOARD_AUDIT_KEY")
            .env_remove("DATABASE_URL")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start offboard serve");
        ConsoleProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            log,
            http: client_with(None),
            cookie: String::new(),
        }
    }

    /// Creates the first owner from the setup link the log printed, and keeps their session
    /// for [`ConsoleProcess::http`]. A console that has accounts already (a restart on the
    /// same data folder) prints no link: then it signs in with the password.
    pub async fn set_up_first_owner(&mut self, extra_args: &[&str]) {
        // With --public-url the console answers only to that host name.
        let host = extra_args
            .iter()
            .position(|a| *a == "--public-url")
            .and_then(|i| extra_args.get(i + 1))
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            });
        let host = host.as_deref();
        let (email, name, password) = FIRST_OWNER;
        let port = self.base.rsplit(':').next().unwrap_or_default().to_string();
        let host = host.map_or_else(|| format!("127.0.0.1:{port}"), str::to_string);
        let mut reply = None;
        if let Some(code) = self.setup_code() {
            let answer = self
                .http
                .post(self.url("/setup"))
                .header(reqwest::header::HOST, &host)
                .form(&[
                    ("code", code.as_str()),
                    ("email", email),
                    ("name", name),
                    ("password", password),
                    ("again", password),
                ])
                .send()
                .await
                .expect("setup");
            // An old link in an appended log is used already: sign in instead.
            if session_cookie(&answer).is_some() {
                reply = Some(answer);
            }
        }
        let reply = match reply {
            Some(reply) => reply,
            None => self
                .http
                .post(self.url("/sign-in"))
                .header(reqwest::header::HOST, &host)
                .form(&[("email", email), ("password", password), ("next", "/")])
                .send()
                .await
                .expect("sign-in"),
        };
        let cookie = session_cookie(&reply).unwrap_or_else(|| {
            panic!(
                "the first owner could not sign in ({}); log:\n{}",
                reply.status(),
                self.log_text()
            )
        });
        self.http = client_with(Some(&cookie));
        self.cookie = cookie;
    }

    /// The code of the newest setup link in the log, if one was printed.
    pub fn setup_code(&self) -> Option<String> {
        let log = self.log_text();
        let at = log.rfind("/setup?code=")? + "/setup?code=".len();
        Some(
            log[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect(),
        )
    }

    /// A client with no session: someone who is not signed in.
    pub fn anonymous(&self) -> Client {
        client_with(None)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once it holds `line` (up to 20 s; the whole log either way). A line the console
    /// writes just after storing what the test waited for (a run's end, a pause seen from
    /// another replica) can lag behind it on a loaded machine: read it once and the test races.
    pub async fn log_once_it_says(&self, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log_text();
            if log.contains(line) || Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// Saves `server` (the real scim2-server) as the team's site, through the Advanced SCIM
    /// base URL, with its token; the connection check's diagnosis.
    pub async fn connect_scim2(&self, server: &super::Scim2Server) -> Value {
        let site = format!("http://127.0.0.1:{}", server.port());
        let answer = self
            .call(
                "save_connection",
                &[
                    ("site_url", site.as_str()),
                    ("scim_base_url", server.base_url().as_str()),
                    ("token", server.token()),
                    ("operator_email", ""),
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

    /// As [`ConsoleProcess::preview_text`] (a delete preview), made by whoever `who` is.
    pub async fn preview_text_as(&self, who: &Client, text: &str) -> Value {
        self.json_as(
            who,
            "preview_text",
            &[
                ("file_name", "leavers.csv"),
                ("text", text),
                ("action", "delete"),
                ("demote", "false"),
            ],
        )
        .await
    }

    /// Calls a server function as whoever `who` is, expecting 200: its JSON answer.
    pub async fn json_as(&self, who: &Client, name: &str, fields: &[(&str, &str)]) -> Value {
        let (status, body) = self.call_as(who, name, fields).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{name}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// Starts the run of `preview` (as [`ConsoleProcess::preview_text`] returned it) by typing
    /// its phrase; the new run's id.
    pub async fn start_run(&self, preview: &Value) -> String {
        let phrase = preview["phrase"].as_str().expect("phrase");
        let started = self
            .call(
                "start_job",
                &[
                    ("preview_id", preview["id"].as_str().expect("preview id")),
                    ("typed", phrase),
                ],
            )
            .await
            .expect("start the run");
        started["id"].as_str().expect("job id").to_string()
    }

    /// Waits (up to 60 s) until run `job_id` has ended; its last view.
    pub async fn run_ended(&self, job_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.call("job", &[("job_id", job_id)]).await.expect("job");
            if ["finished", "stopped", "failed"].contains(&job["state"].as_str().unwrap_or("")) {
                return job;
            }
            assert!(Instant::now() < deadline, "the run did not end: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// Calls a server function as whoever `client` is signed in as: the status and the body.
    pub async fn call_as(
        &self,
        client: &Client,
        name: &str,
        fields: &[(&str, &str)],
    ) -> (reqwest::StatusCode, String) {
        let reply = client
            .post(self.url(&format!("/api/{name}")))
            .header("Accept", "application/json")
            .form(fields)
            .send()
            .await
            .expect("server function request");
        let status = reply.status();
        (status, reply.text().await.expect("body"))
    }

    /// Posts a plain form as whoever `client` is: the raw answer (redirects not followed).
    pub async fn post_form(
        &self,
        client: &Client,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .expect("form post")
    }

    /// Tells the process to stop (SIGTERM, as a supervisor does) and waits until it exited
    /// (killed after 20 s).
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// The process's id (a replica's job leases name it: `<pid>-<random>`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (as a supervisor stopping it does) without waiting.
    pub fn ask_to_stop(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits until the process exited by itself and gives its status; `None` if it had not
    /// after 60 s (a safety net so a hung console fails the test instead of hanging it; then
    /// it is killed).
    pub fn wait_for_exit(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ConsoleProcess {
    /// The database this console keeps its records in: its SQLite file, or the PostgreSQL
    /// database `OFFBOARD_TEST_DATABASE=postgres` gave it.
    pub fn database_url(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("database-url"))
            .unwrap_or_else(|_| format!("sqlite://{}", self.data_dir.join("offboard.db").display()))
    }

    /// Runs `sql` (with `$1`… bound to `text`) on the console's database behind its back, as
    /// someone with the database (not Offboard) would; the first column of each row, as text.
    pub async fn sql(&self, sql: &str, text: &[&str]) -> Vec<String> {
        use sqlx::Connection;
        let url = self.database_url();
        macro_rules! run {
            ($conn:ty) => {{
                let mut conn = <$conn>::connect(&url)
                    .await
                    .expect("connect to the database");
                let mut query = sqlx::query_scalar::<_, String>(sql);
                for value in text {
                    query = query.bind(*value);
                }
                query
                    .fetch_all(&mut conn)
                    .await
                    .expect("the statement runs")
            }};
        }
        if url.starts_with("postgres") {
            run!(sqlx::PgConnection)
        } else {
            run!(sqlx::SqliteConnection)
        }
    }
}

/// With `OFFBOARD_TEST_DATABASE=postgres`, a console started without `--database-url` runs on
/// a fresh database of the test binary's PostgreSQL cluster instead of its SQLite file: the
/// same console-level suite, on the other database (`OFFBOARD_TEST_DATABASE=postgres cargo test
/// -p server --features app/ssr --test hardening`). A restart on the same data folder finds the
/// same database again (its URL is kept next to the folder).
async fn on_postgres_if_asked(data_dir: &Path, extra_args: &[&str]) -> Option<String> {
    if std::env::var("OFFBOARD_TEST_DATABASE").as_deref() != Ok("postgres")
        || extra_args.contains(&"--database-url")
    {
        return None;
    }
    let kept = data_dir.with_extension("database-url");
    if let Ok(url) = std::fs::read_to_string(&kept) {
        return Some(url);
    }
    let url = super::pg_cluster::shared().fresh_database().await;
    std::fs::write(&kept, &url).expect("keep the database URL");
    Some(url)
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
