//! `--secret-key-file` / `--audit-key-file`: the keys read from files a supervisor hands the
//! console (systemd's `LoadCredential=`), so a key never sits in the environment or the unit.

use super::ServeArgs;
use model::hidden::Hidden;
use std::path::Path;

impl ServeArgs {
    /// The token key as text, from --secret-key or --secret-key-file; None: the data folder's
    /// `secret.key`.
    pub fn secret_key_text(&self) -> Result<Option<Hidden<String>>, String> {
        key_text(
            self.secret_key.as_ref(),
            self.secret_key_file.as_deref(),
            "--secret-key-file",
        )
    }

    /// The audit key as text, from --audit-key or --audit-key-file; None: the data folder's
    /// `audit.key`.
    pub fn audit_key_text(&self) -> Result<Option<Hidden<String>>, String> {
        key_text(
            self.audit_key.as_ref(),
            self.audit_key_file.as_deref(),
            "--audit-key-file",
        )
    }
}

/// The value given, else the file's text (trimmed); the file's path and why it could not be
/// read, never its content.
pub(super) fn key_text(
    value: Option<&Hidden<String>>,
    file: Option<&Path>,
    flag: &str,
) -> Result<Option<Hidden<String>>, String> {
    if let Some(value) = value {
        return Ok(Some(value.clone()));
    }
    let Some(file) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{flag}: could not read {}: {}", file.display(), e.kind()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{flag}: {} is empty", file.display()));
    }
    Ok(Some(Hidden::new(text.to_string())))
}

#[cfg(test)]
mod tests {
    use crate::config::serve_for_test as serve;
    use crate::config::{file_holding, says_all, Cli};
    use clap::Parser;

    #[test]
    fn a_key_file_is_read_trimmed_and_never_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_holding(dir.path(), "secret-key", "  a2V5LWZpbGUtdmFsdWU=\n");
        let args = serve(&["--secret-key-file", &path, "--audit-key-file", &path]);
        let key = args.secret_key_text().unwrap().unwrap();
        assert_eq!(key.expose(), "a2V5LWZpbGUtdmFsdWU=");
        assert_eq!(
            args.audit_key_text().unwrap().unwrap().expose(),
            key.expose()
        );
        assert!(!format!("{args:?}").contains("a2V5"));

        file_holding(dir.path(), "secret-key", " \n");
        says_all(
            &args.secret_key_text().unwrap_err(),
            &["empty", "secret-key"],
        );

        let missing = dir.path().join("nope").to_string_lossy().to_string();
        let err = serve(&["--audit-key-file", &missing]).audit_key_text();
        says_all(&err.unwrap_err(), &["--audit-key-file", "not found"]);
    }

    #[test]
    fn no_key_given_means_the_data_folders_file_and_both_at_once_are_refused() {
        let args = serve(&[]);
        assert!(args.secret_key_text().unwrap().is_none());
        assert!(args.audit_key_text().unwrap().is_none());
        let argv = [
            "offboard",
            "serve",
            "--secret-key",
            "x",
            "--secret-key-file",
            "/f",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
