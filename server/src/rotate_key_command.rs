//! `offboard rotate-key`: re-encrypts every saved SCIM token under a new key, all or nothing.
//!
//! Key file: the new key is written to `secret.key.new` first; the tokens are re-encrypted in
//! one transaction; only after it committed does the new file replace `secret.key` (one
//! rename). Until then the old key file is untouched, so a failure leaves the console as it
//! was. Environment key: the new key comes from `OFFBOARD_NEW_SECRET_KEY`, and the admin sets
//! `OFFBOARD_SECRET_KEY` to it afterwards (Offboard cannot change its own environment).

use crate::config::RotateKeyArgs;
use crate::secret::{self, SecretBox, KEY_FILE_NAME};
use crate::service::{self, keys::rotate_key};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs the command; 0 when every token was re-encrypted, 1 otherwise (nothing changed).
pub async fn run(args: RotateKeyArgs) -> ExitCode {
    match rotate(&args).await {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("offboard rotate-key: {problem}");
            ExitCode::FAILURE
        }
    }
}

async fn rotate(args: &RotateKeyArgs) -> Result<String, String> {
    if args.secret_key.is_some() {
        return rotate_environment_key(args).await;
    }
    let key_file = args.database.data_dir.join(KEY_FILE_NAME);
    let pending = pending_key_file(&key_file);
    if pending.exists() {
        return Err(format!(
            "{} is left from an earlier rotate-key that did not finish. If that run printed \
             \"Done\", move it over {} (mv {} {}); otherwise delete it. Then run rotate-key again.",
            pending.display(),
            key_file.display(),
            pending.display(),
            key_file.display()
        ));
    }
    let current = SecretBox::from_key_file(&key_file).map_err(|e| e.to_string())?;
    let new_text = match &args.new_secret_key {
        Some(text) => text.clone(),
        None => secret::new_key_text(),
    };
    let new = SecretBox::from_key_text(new_text.expose()).map_err(|e| e.to_string())?;
    secret::write_key_file(&pending, &new_text).map_err(|e| e.to_string())?;
    let count = match reencrypt(args, &current, &new).await {
        Ok(count) => count,
        Err(problem) => {
            let _ = std::fs::remove_file(&pending);
            return Err(problem);
        }
    };
    std::fs::rename(&pending, &key_file).map_err(|e| {
        format!(
            "the tokens are re-encrypted, but the new key could not replace {}: {e}. Move {} \
             over it by hand before starting the console.",
            key_file.display(),
            pending.display()
        )
    })?;
    Ok(format!(
        "Done: {count} saved token(s) re-encrypted; {} now holds the new key.",
        key_file.display()
    ))
}

async fn rotate_environment_key(args: &RotateKeyArgs) -> Result<String, String> {
    let current_text = args
        .secret_key
        .as_ref()
        .map(|k| k.expose().as_str())
        .unwrap_or_default();
    let Some(new_text) = &args.new_secret_key else {
        return Err(
            "the console's key comes from OFFBOARD_SECRET_KEY, so give the new key in \
             OFFBOARD_NEW_SECRET_KEY (make one with `openssl rand -base64 32`)."
                .to_string(),
        );
    };
    let current = SecretBox::from_key_text(current_text).map_err(|e| e.to_string())?;
    let new = SecretBox::from_key_text(new_text.expose())
        .map_err(|e| format!("OFFBOARD_NEW_SECRET_KEY: {e}"))?;
    let count = reencrypt(args, &current, &new).await?;
    Ok(format!(
        "Done: {count} saved token(s) re-encrypted. Start the console with OFFBOARD_SECRET_KEY \
         set to the new key (the value of OFFBOARD_NEW_SECRET_KEY)."
    ))
}

async fn reencrypt(
    args: &RotateKeyArgs,
    current: &SecretBox,
    new: &SecretBox,
) -> Result<usize, String> {
    let db = service::open_database(&args.database.effective_database_url())
        .await
        .map_err(|e| format!("could not open the database: {e}"))?;
    rotate_key(db.storage.as_ref(), current, new)
        .await
        .map_err(|e| e.to_string())
}

/// Where the new key waits until the tokens are re-encrypted.
fn pending_key_file(key_file: &Path) -> PathBuf {
    key_file.with_file_name(format!("{KEY_FILE_NAME}.new"))
}
