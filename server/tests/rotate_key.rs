//! `offboard rotate-key` on a real SQLite file: the real binary saves a token (through the real
//! console, against the project's fault server, a FAKE Stack site), the command re-encrypts it, and the console
//! restarted with the new key still decrypts it and still accepts the preview made before.
//! A failure changes nothing: not the database, not the key file.

mod support;

use serde_json::{json, Value};
use sqlx::sqlite::SqlitePoolOptions;
use std::path::Path;
use std::process::Command;
use support::console_process::ConsoleProcess;
use support::fault_server::{FaultServer, TOKEN};

fn rotate_key(data: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_offboard"));
    command
        .args(["rotate-key", "--data-dir"])
        .arg(data)
        .env_remove("OFFBOARD_SECRET_KEY")
        .env_remove("OFFBOARD_NEW_SECRET_KEY")
        .env_remove("DATABASE_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run offboard rotate-key");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// (connection ciphertext, preview sources' fingerprints) as stored.
async fn stored(data: &Path) -> (String, Vec<String>) {
    let url = format!("sqlite://{}", data.join("offboard.db").display());
    let pool = SqlitePoolOptions::new().connect(&url).await.unwrap();
    let ciphertext: String =
        sqlx::query_scalar("SELECT token_ciphertext FROM connections WHERE team_id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let prints: Vec<String> =
        sqlx::query_scalar("SELECT token_fingerprint FROM preview_sources ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    (ciphertext, prints)
}

async fn set_ciphertext(data: &Path, value: &str) {
    let url = format!("sqlite://{}", data.join("offboard.db").display());
    let pool = SqlitePoolOptions::new().connect(&url).await.unwrap();
    sqlx::query("UPDATE connections SET token_ciphertext = ? WHERE team_id = 1")
        .bind(value)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn check(console: &ConsoleProcess) -> Value {
    console
        .call("check_connection", &[])
        .await
        .expect("check_connection")
}

#[tokio::test]
async fn rotate_key_re_encrypts_every_token_and_a_failure_changes_nothing() {
    let site = FaultServer::start(&["--users", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = data.join("secret.key");

    let mut console = ConsoleProcess::start(&data).await;
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], serde_json::json!(true), "{diagnosis}");
    let preview = console
        .preview_text("Email\nuser1@example.com\n", "deactivate")
        .await;
    console.kill();
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let (old_ciphertext, old_prints) = stored(&data).await;
    assert_eq!(old_prints.len(), 1);

    // A damaged token: nothing changes, the old key file stays, no new key is left behind.
    set_ciphertext(
        &data,
        "v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await;
    let (ok, text) = rotate_key(&data, &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("cannot be decrypted with the current key"),
        "{text}"
    );
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), old_key);
    assert!(!data.join("secret.key.new").exists());
    set_ciphertext(&data, &old_ciphertext).await;
    assert_eq!(stored(&data).await.0, old_ciphertext);

    // The key file: re-encrypted, the new key in place, private.
    let (ok, text) = rotate_key(&data, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("Done: 1 saved token(s) re-encrypted"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!data.join("secret.key.new").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (new_ciphertext, new_prints) = stored(&data).await;
    assert_ne!(new_ciphertext, old_ciphertext);
    assert_ne!(
        new_prints, old_prints,
        "the preview's fingerprint was not moved"
    );

    // The console with the new key decrypts the token, and the preview made under the old key
    // still starts its run (its fingerprint moved along).
    console = ConsoleProcess::start(&data).await;
    let found = check(&console).await;
    assert_eq!(found["ok"], json!(true), "{found}");
    let started = console
        .call(
            "start_job",
            &[
                ("preview_id", preview["id"].as_str().unwrap()),
                ("typed", preview["phrase"].as_str().unwrap()),
            ],
        )
        .await;
    assert!(started.is_ok(), "{started:?}");
    console.kill();

    // The environment key: the wrong current key changes nothing; the right one re-encrypts,
    // and the key file is left alone (the admin sets OFFBOARD_SECRET_KEY to the new key).
    let env_new = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let wrong = "ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=";
    let before = stored(&data).await;
    let (ok, text) = rotate_key(
        &data,
        &[
            ("OFFBOARD_SECRET_KEY", wrong),
            ("OFFBOARD_NEW_SECRET_KEY", env_new),
        ],
    );
    assert!(!ok, "{text}");
    assert_eq!(stored(&data).await, before);
    let (ok, text) = rotate_key(&data, &[("OFFBOARD_SECRET_KEY", new_key.trim())]);
    assert!(!ok, "{text}");
    assert!(text.contains("OFFBOARD_NEW_SECRET_KEY"), "{text}");
    let (ok, text) = rotate_key(
        &data,
        &[
            ("OFFBOARD_SECRET_KEY", new_key.trim()),
            ("OFFBOARD_NEW_SECRET_KEY", env_new),
        ],
    );
    assert!(ok, "{text}");
    assert!(
        !text.contains(env_new) && !text.contains(new_key.trim()),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), new_key);
    assert_ne!(stored(&data).await.0, before.0);
    // The console started with the new key (written where it reads it) decrypts the token.
    std::fs::remove_file(&key_file).unwrap();
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&key_file)
            .unwrap()
            .write_all(format!("{env_new}\n").as_bytes())
            .unwrap();
    }
    console = ConsoleProcess::start(&data).await;
    let found = check(&console).await;
    assert_eq!(found["ok"], json!(true), "{found}");
}

/// The connection's ciphertext as PostgreSQL stores it.
async fn stored_on_postgres(url: &str) -> String {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar("SELECT token_ciphertext FROM connections WHERE team_id = 1")
        .fetch_one(&mut db)
        .await
        .expect("ciphertext")
}

/// `offboard rotate-key --database-url postgres://…`: the token a console on PostgreSQL saved
/// is re-encrypted there, and the console restarted with the new key decrypts it and starts the
/// preview made under the old one.
#[tokio::test]
async fn rotate_key_re_encrypts_the_tokens_of_a_console_on_postgres() {
    let cluster = support::pg_cluster::PgCluster::start().unwrap_or_else(|why| panic!("{why}"));
    let url = cluster.fresh_database().await;
    let site = FaultServer::start(&["--users", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = data.join("secret.key");
    let args = ["--database-url", url.as_str()];

    let mut console = ConsoleProcess::start_with(&data, &args).await;
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    let preview = console
        .preview_text("Email\nuser1@example.com\n", "deactivate")
        .await;
    console.kill();
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let old_ciphertext = stored_on_postgres(&url).await;

    let (ok, text) = rotate_key(&data, &[("DATABASE_URL", url.as_str())]);
    assert!(ok, "{text}");
    assert!(
        text.contains("Done: 1 saved token(s) re-encrypted"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old_key);
    assert_ne!(stored_on_postgres(&url).await, old_ciphertext);

    console = ConsoleProcess::start_with(&data, &args).await;
    let found = check(&console).await;
    assert_eq!(found["ok"], json!(true), "{found}");
    let started = console
        .call(
            "start_job",
            &[
                ("preview_id", preview["id"].as_str().unwrap()),
                ("typed", preview["phrase"].as_str().unwrap()),
            ],
        )
        .await;
    assert!(started.is_ok(), "{started:?}");
}
