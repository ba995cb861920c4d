//! What hosting teams run, against the real `offboard` binary: `offboard check-config` (a good
//! configuration passes; a damaged key, an unreachable database, a bad proxy network or an
//! unreachable sign-in service fail, each on its own line, no secret printed), the keys read
//! from credential files, the hardened systemd unit (`systemd-analyze verify`), and the release
//! archive started from a folder of its own.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::console_process::client_with;
use support::scim2_server::free_port;

const GOOD_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const OTHER_KEY: &str = "3q2+7wAREiIzRFVmd4iZqrvM3e7/ABEiM0RVZneImao=";

/// `offboard ARGS` with none of the settings the machine's environment might hold.
fn offboard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_offboard"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("OFFBOARD_") || name == "DATABASE_URL" || name == "LEPTOS_SITE_ROOT" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run offboard")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A data folder, a web-assets folder with `pkg/`, and both keys in credential files.
struct Setup {
    _dir: tempfile::TempDir,
    data: String,
    site: String,
    secret_file: PathBuf,
    audit_file: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let site = dir.path().join("site");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    let secret_file = credentials.join("secret-key");
    let audit_file = credentials.join("audit-key");
    std::fs::write(&secret_file, format!("{GOOD_KEY}\n")).unwrap();
    std::fs::write(&audit_file, format!("{OTHER_KEY}\n")).unwrap();
    Setup {
        data: data.to_string_lossy().into_owned(),
        site: site.to_string_lossy().into_owned(),
        secret_file,
        audit_file,
        _dir: dir,
    }
}

impl Setup {
    fn check(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut args = vec![
            "check-config",
            "--data-dir",
            &self.data,
            "--site-root",
            &self.site,
        ];
        args.extend_from_slice(extra);
        let mut env = env.to_vec();
        let secret = self.secret_file.to_string_lossy().into_owned();
        let audit = self.audit_file.to_string_lossy().into_owned();
        env.push(("OFFBOARD_SECRET_KEY_FILE", &secret));
        env.push(("OFFBOARD_AUDIT_KEY_FILE", &audit));
        offboard(&args, &env)
    }
}

fn assert_no_secret(out: &str) {
    for secret in [GOOD_KEY, OTHER_KEY, "pw-very-secret", "oidc-secret-77"] {
        assert!(!out.contains(secret), "{secret} printed:\n{out}");
    }
}

/// The mail server is checked as a send would reach it (a real one: PyPI aiosmtpd), and one
/// that is not there fails the check in words.
#[tokio::test]
async fn check_config_says_whether_the_mail_server_answers() {
    let setup = setup();
    let mail = support::smtp_sink::SmtpSink::start_on(free_port());
    let check = |url: &str, env: &[(&str, &str)]| {
        let flags = [
            "--public-url",
            "https://offboard.example.com",
            "--smtp-from",
            "offboard@example.com",
            "--smtp-url",
            url,
        ];
        let output = setup.check(&flags, env);
        (output.status.success(), text(&output))
    };
    let (ok, out) = check(&format!("smtp://127.0.0.1:{}", mail.port), &[]);
    assert!(ok, "{out}");
    let answers = format!(
        "ok    email (SMTP): the mail server at 127.0.0.1:{} answers",
        mail.port
    );
    assert!(out.contains(&answers), "{out}");
    let nobody = format!("smtp://relay@127.0.0.1:{}", free_port());
    let (ok, out) = check(&nobody, &[("OFFBOARD_SMTP_PASSWORD", "pw-very-secret")]);
    assert!(!ok, "{out}");
    assert!(out.contains("FAIL  email (SMTP): 127.0.0.1:"), "{out}");
    assert!(out.contains("Could not reach the mail server."), "{out}");
    assert_no_secret(&out);
}

#[test]
fn a_good_configuration_passes_every_check() {
    let setup = setup();
    let output = setup.check(
        &[
            "--addr",
            "127.0.0.1:3000",
            "--metrics-addr",
            "127.0.0.1:9464",
            "--public-url",
            "https://offboard.example.com",
            "--trusted-proxy",
            "10.0.0.0/8",
        ],
        &[],
    );
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    for line in [
        "ok    listen addresses: console on 127.0.0.1:3000, metrics on 127.0.0.1:9464",
        "ok    public URL: https://offboard.example.com",
        "ok    token key: given, 32 bytes",
        "ok    audit key: given, 32 bytes",
        "ok    trusted proxies: 10.0.0.0/8",
        "skip  single sign-on:",
        "skip  email (SMTP): not configured",
        "All ",
    ] {
        assert!(out.contains(line), "{line} missing:\n{out}");
    }
    // The SQLite file does not exist yet: said, not created.
    assert!(out.contains("note  database: SQLite file"), "{out}");
    assert!(!Path::new(&setup.data).join("offboard.db").exists());
    assert!(!out.contains("FAIL"), "{out}");
    assert_no_secret(&out);
}

#[test]
fn a_damaged_key_file_fails_its_line_without_printing_the_key() {
    let setup = setup();
    // 16 bytes, not 32.
    std::fs::write(&setup.secret_file, "c2hvcnQta2V5LTE2LWJ5dA==\n").unwrap();
    let output = setup.check(&[], &[]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL  token key:"), "{out}");
    assert!(out.contains("ok    audit key:"), "{out}");
    assert!(!out.contains("c2hvcnQta2V5"), "{out}");
    // A key file that is not there.
    std::fs::remove_file(&setup.audit_file).unwrap();
    let out = text(&setup.check(&[], &[]));
    assert!(
        out.contains("FAIL  audit key: --audit-key-file: could not read"),
        "{out}"
    );
    assert_no_secret(&out);
}

#[test]
fn an_unreachable_database_fails_and_its_password_never_shows() {
    let setup = setup();
    let url = format!(
        "postgres://offboard:pw-very-secret@127.0.0.1:{}/offboard",
        free_port()
    );
    let output = setup.check(&[], &[("DATABASE_URL", &url)]);
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL  database: PostgreSQL at 127.0.0.1:"),
        "{out}"
    );
    assert_no_secret(&out);
}

#[test]
fn a_bad_proxy_network_fails_from_a_flag_or_the_environment() {
    let setup = setup();
    let flag = setup.check(&["--trusted-proxy", "10.0.0.1/8"], &[]);
    let env = setup.check(
        &[],
        &[("OFFBOARD_TRUSTED_PROXIES", "10.0.0.0/8,not-a-network")],
    );
    for (output, value) in [(flag, "10.0.0.1/8"), (env, "not-a-network")] {
        let out = text(&output);
        assert_eq!(output.status.code(), Some(1), "{out}");
        assert!(out.contains("FAIL  settings: --trusted-proxy"), "{out}");
        assert!(out.contains(value), "{out}");
    }
}

#[test]
fn single_sign_on_is_checked_by_asking_the_issuer() {
    let setup = setup();
    let secret = setup.secret_file.parent().unwrap().join("oidc");
    std::fs::write(&secret, "oidc-secret-77").unwrap();
    let secret = secret.to_string_lossy().into_owned();
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let output = setup.check(
        &[
            "--public-url",
            "https://offboard.example.com",
            "--oidc-issuer",
            &issuer,
            "--oidc-client-id",
            "offboard",
            "--oidc-client-secret-file",
            &secret,
        ],
        &[],
    );
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL  single sign-on:"), "{out}");
    assert_no_secret(&out);
}

/// GET `url` until it answers 200 (30 s at most): the body.
async fn wait_for_200(url: &str, log: &Path) -> String {
    let client = client_with(None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(reply) = client.get(url).send().await {
            if reply.status().as_u16() == 200 {
                return reply.text().await.unwrap_or_default();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered 200; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A started console, killed when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_console_takes_its_keys_from_credential_files() {
    let setup = setup();
    let port = free_port();
    let log = Path::new(&setup.data).with_extension("log");
    let child = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--data-dir", &setup.data, "--site-root", &setup.site])
        .env_remove("OFFBOARD_SECRET_KEY")
        .env_remove("OFFBOARD_AUDIT_KEY")
        .env_remove("DATABASE_URL")
        .env("OFFBOARD_SECRET_KEY_FILE", &setup.secret_file)
        .env("OFFBOARD_AUDIT_KEY_FILE", &setup.audit_file)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start offboard");
    let _running = Running(child);
    wait_for_200(&format!("http://127.0.0.1:{port}/healthz"), &log).await;
    // The keys came from the files: none was made in the data folder, none was logged.
    for made in ["secret.key", "audit.key"] {
        assert!(!Path::new(&setup.data).join(made).exists(), "{made}");
    }
    assert_no_secret(&std::fs::read_to_string(&log).unwrap_or_default());
}

#[test]
fn a_credential_file_that_cannot_be_read_stops_the_console() {
    let setup = setup();
    let output = offboard(
        &[
            "serve",
            "--addr",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
            &setup.data,
            "--secret-key-file",
            "/nonexistent/credentials/secret-key",
        ],
        &[],
    );
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(out.contains("--secret-key-file"), "{out}");
}

/// The unit with the real binary in place of /opt/offboard/offboard, in a folder of its own.
fn rendered_unit(dir: &Path, extra: &str) -> PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/offboard.service"
    ))
    .expect("deploy/offboard.service");
    let rendered = unit
        .replace("/opt/offboard/offboard", env!("CARGO_BIN_EXE_offboard"))
        .replace("[Install]", &format!("{extra}\n[Install]"));
    let path = dir.join("offboard.service");
    std::fs::write(&path, rendered).unwrap();
    path
}

/// What `systemd-analyze verify` says of `unit`, and whether it succeeded.
fn verify(unit: &Path) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("systemd-analyze is installed (Debian's systemd package)");
    let said = text(&output);
    // Unknown keys and bad values are warnings with exit 0: any line about the unit counts.
    let clean = output.status.success() && !said.contains("offboard.service");
    (clean, said)
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = rendered_unit(dir.path(), "");
    let (clean, said) = verify(&unit);
    assert!(clean, "systemd-analyze verify:\n{said}");
    // The check can fail: a misspelt setting is caught.
    let broken = tempfile::tempdir().unwrap();
    let (clean, said) = verify(&rendered_unit(
        broken.path(),
        "[Service]\nProtectSystm=strict\n",
    ));
    assert!(!clean, "a misspelt key passed: {said}");

    let text = std::fs::read_to_string(&unit).unwrap();
    let settings: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for needed in [
        "User=offboard",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/offboard",
        "CapabilityBoundingSet=",
        "LoadCredential=secret-key:/etc/offboard/credentials/secret-key",
        "LoadCredential=audit-key:/etc/offboard/credentials/audit-key",
        "Environment=OFFBOARD_SECRET_KEY_FILE=%d/secret-key",
        "Environment=OFFBOARD_AUDIT_KEY_FILE=%d/audit-key",
    ] {
        assert!(settings.contains(&needed), "{needed} missing");
    }
    // The OIDC secret's credential is there, for consoles with single sign-on.
    assert!(text.contains("LoadCredential=oidc-client-secret:"));
    assert!(text.contains("OFFBOARD_OIDC_CLIENT_SECRET_FILE=%d/oidc-client-secret"));
    // Only the data folder is writable, and no key sits in the unit.
    let writable: Vec<&&str> = settings
        .iter()
        .filter(|l| l.starts_with("ReadWritePaths="))
        .collect();
    assert_eq!(writable.len(), 1, "{writable:?}");
    assert!(!settings
        .iter()
        .any(|l| l.starts_with("Environment=OFFBOARD_SECRET_KEY=")
            || l.starts_with("Environment=OFFBOARD_AUDIT_KEY=")));
}

/// The built web assets to pack: the release build's (`make site`) when there is one, else a
/// FAKE stand-in site made here (a stylesheet, a script and a WASM file with the real names'
/// shape), enough to show the archive's layout serves them.
fn site_to_pack(dir: &Path) -> PathBuf {
    if let Some(built) = std::env::var_os("OFFBOARD_SITE_ROOT").map(PathBuf::from) {
        if built.join("pkg").is_dir() {
            return built;
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site");
    if built.join("pkg").is_dir() {
        return built;
    }
    let fake = dir.join("fake-site");
    let pkg = fake.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(
        pkg.join("offboard.0123456789abcdef.css"),
        "body{color:#111}",
    )
    .unwrap();
    std::fs::write(
        pkg.join("offboard.0123456789abcdef.js"),
        "export default 1;",
    )
    .unwrap();
    std::fs::write(
        pkg.join("offboard.0123456789abcdef.wasm"),
        b"\0asm\x01\0\0\0",
    )
    .unwrap();
    // The names' hashes, as `make site` lists them (scripts/finish-site.mjs).
    let hashes = "js: 0123456789abcdef\nwasm: 0123456789abcdef\ncss: 0123456789abcdef\n";
    std::fs::write(fake.join("hash.txt"), hashes).unwrap();
    fake
}

#[tokio::test]
async fn the_release_archive_runs_from_any_folder() {
    let dir = tempfile::tempdir().unwrap();
    let site = site_to_pack(dir.path());
    let packed = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/dist.sh"))
        .arg(env!("CARGO_BIN_EXE_offboard"))
        .arg(&site)
        .arg(dir.path().join("out"))
        .output()
        .expect("scripts/dist.sh");
    assert!(packed.status.success(), "{}", text(&packed));
    let archive = String::from_utf8_lossy(&packed.stdout).trim().to_string();

    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(untar.success());
    let root = std::fs::read_dir(&unpacked)
        .unwrap()
        .next()
        .expect("one folder in the archive")
        .unwrap()
        .path();
    for part in [
        "offboard",
        "site/pkg",
        "deploy/offboard.service",
        "README.md",
        "docs/operations.md",
    ] {
        assert!(root.join(part).exists(), "{part} missing from the archive");
    }

    // Started from an unrelated folder, without --site-root: it finds site/ beside itself.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let port = free_port();
    let log = dir.path().join("console.log");
    let child = Command::new(root.join("offboard"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .current_dir(&elsewhere)
        .env_remove("LEPTOS_SITE_ROOT")
        .env_remove("OFFBOARD_SECRET_KEY")
        .env_remove("OFFBOARD_AUDIT_KEY")
        .env_remove("DATABASE_URL")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start the unpacked offboard");
    let _running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    let health = wait_for_200(&format!("{base}/healthz"), &log).await;
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    let page = wait_for_200(&format!("{base}/sign-in"), &log).await;
    assert!(page.contains("<form"), "{page}");
    let client = client_with(None);
    let css = page
        .split('"')
        .find(|part| part.starts_with("/pkg/") && part.ends_with(".css"))
        .unwrap_or_else(|| panic!("no stylesheet in the sign-in page:\n{page}"))
        .to_string();
    let wasm = std::fs::read_dir(root.join("site/pkg"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|name| name.ends_with(".wasm"))
        .expect("a .wasm in the archive's site");
    for path in [css, format!("/pkg/{wasm}")] {
        let reply = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(reply.status().as_u16(), 200, "{path}");
        assert!(!reply.bytes().await.unwrap().is_empty(), "{path}");
    }
}
