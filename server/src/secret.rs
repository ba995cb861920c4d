//! Keeps each team's SCIM token encrypted at rest (AES-256-GCM), with the key in
//! `OFFBOARD_SECRET_KEY` or a `secret.key` file only the server's own user can read; and
//! holds the audit trail's signing key ([`AuditKey`]: `OFFBOARD_AUDIT_KEY` or `audit.key`).

use crate::scim::ScimToken;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use model::hidden::Hidden;
use model::ids::TeamId;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The key file's name inside the data directory.
pub const KEY_FILE_NAME: &str = "secret.key";

/// The environment variable that, when set, holds the key instead of the key file.
pub const KEY_ENV_VAR: &str = "OFFBOARD_SECRET_KEY";

/// The audit key file's name inside the data directory.
pub const AUDIT_KEY_FILE_NAME: &str = "audit.key";

/// The environment variable that, when set, holds the audit key instead of its file.
pub const AUDIT_KEY_ENV_VAR: &str = "OFFBOARD_AUDIT_KEY";

/// Marks the stored format, so a later change of algorithm or key can be recognised.
const FORMAT_PREFIX: &str = "v1:";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    // Never echo the value: it is the key itself.
    #[error("{KEY_ENV_VAR} must be the base64 of 32 random bytes (for example the output of `openssl rand -base64 32`); {0}")]
    BadEnvKey(String),
    #[error("the key file {path} can be read by other users (permissions {mode:o}); run `chmod 600 {path}` and start again")]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    #[error("the key file {path} is damaged (it must hold the base64 of 32 bytes). Restore it from a backup; if it is lost, delete it and enter the SCIM tokens again")]
    KeyFileDamaged { path: PathBuf },
    #[error("could not use the key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{AUDIT_KEY_ENV_VAR} must be the base64 of 32 random bytes (for example the output of `openssl rand -base64 32`); {0}")]
    BadAuditEnvKey(String),
    #[error("the audit key file {path} is damaged (it must hold the base64 of 32 bytes). Restore it from a backup: the audit trail's entries are signed with it")]
    AuditKeyFileDamaged { path: PathBuf },
    #[error("could not encrypt the SCIM token")]
    Encrypt,
    #[error("the saved SCIM token is not in a format this version of Offboard knows; enter the token again")]
    UnknownFormat,
    #[error("the saved SCIM token cannot be decrypted: the server's key changed or the record was altered; enter the token again")]
    CannotDecrypt,
}

/// Encrypts and decrypts SCIM tokens with the server's key. `Debug` never shows the key.
#[derive(Clone, Debug)]
pub struct SecretBox {
    cipher: Hidden<Aes256Gcm>,
    /// Keys token fingerprints; derived from the key, never the key itself.
    fingerprint_key: Hidden<[u8; KEY_LEN]>,
}

impl SecretBox {
    /// Uses `env_key` (the value of [`KEY_ENV_VAR`]) when given, else `data_dir/secret.key`,
    /// creating that file with 32 random bytes on first start.
    pub fn load_or_create(
        data_dir: &Path,
        env_key: Option<&str>,
    ) -> Result<SecretBox, SecretError> {
        let key = match env_key {
            Some(value) => key_from_env(value)?,
            None => load_or_create_key_file(&data_dir.join(KEY_FILE_NAME))?,
        };
        Ok(SecretBox::from_key(&key))
    }

    fn from_key(key: &[u8; KEY_LEN]) -> SecretBox {
        SecretBox {
            cipher: Hidden::new(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))),
            fingerprint_key: Hidden::new(hmac_sha256(key, b"offboard token fingerprint key v1")),
        }
    }

    /// A fingerprint of `token` for `team_id`: HMAC-SHA256 under a key derived from the
    /// server's key, as hex. Equal fingerprints mean the same token, and the fingerprint says
    /// nothing about the token to whoever lacks the key. A run records the fingerprint of the
    /// token it was confirmed with and resumes only with the same token.
    pub fn fingerprint(&self, team_id: TeamId, token: &ScimToken) -> String {
        let mut message = associated_data(team_id);
        message.push(0);
        message.extend_from_slice(token.expose().as_bytes());
        hmac_sha256(self.fingerprint_key.expose(), &message)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `v1:` + base64(nonce || ciphertext+tag). The team id is bound as associated data, so a
    /// ciphertext copied into another team's row does not decrypt.
    pub fn encrypt(&self, team_id: TeamId, token: &ScimToken) -> Result<String, SecretError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let associated = associated_data(team_id);
        let sealed = self
            .cipher
            .expose()
            .encrypt(
                &nonce,
                Payload {
                    msg: token.expose().as_bytes(),
                    aad: &associated,
                },
            )
            .map_err(|_| SecretError::Encrypt)?;
        let mut stored = Vec::with_capacity(NONCE_LEN + sealed.len());
        stored.extend_from_slice(&nonce);
        stored.extend_from_slice(&sealed);
        Ok(format!("{FORMAT_PREFIX}{}", BASE64.encode(stored)))
    }

    pub fn decrypt(&self, team_id: TeamId, stored: &str) -> Result<ScimToken, SecretError> {
        let encoded = stored
            .trim()
            .strip_prefix(FORMAT_PREFIX)
            .ok_or(SecretError::UnknownFormat)?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| SecretError::CannotDecrypt)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::CannotDecrypt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let associated = associated_data(team_id);
        let plain = self
            .cipher
            .expose()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &associated,
                },
            )
            .map_err(|_| SecretError::CannotDecrypt)?;
        let text = String::from_utf8(plain).map_err(|_| SecretError::CannotDecrypt)?;
        Ok(ScimToken::new(text))
    }
}

impl SecretBox {
    /// The box for a key given as text (base64 of 32 bytes, as `OFFBOARD_SECRET_KEY` holds it).
    pub fn from_key_text(text: &str) -> Result<SecretBox, SecretError> {
        Ok(SecretBox::from_key(&key_from_env(text)?))
    }

    /// The box for an existing key file; never creates one.
    pub fn from_key_file(path: &Path) -> Result<SecretBox, SecretError> {
        Ok(SecretBox::from_key(&read_key_file(path)?))
    }
}

/// A fresh random key as a key file holds it (base64 of 32 bytes), for `offboard rotate-key`.
pub fn new_key_text() -> Hidden<String> {
    Hidden::new(BASE64.encode(Aes256Gcm::generate_key(OsRng)))
}

/// Writes `key_text` to `path`, which must not exist yet, readable by its owner only.
pub fn write_key_file(path: &Path, key_text: &Hidden<String>) -> Result<(), SecretError> {
    write_private_file(path, format!("{}\n", key_text.expose().trim()).as_bytes())
        .map_err(io_error(path))
}

/// The key that signs the audit trail (HMAC-SHA256 of each entry, see `storage/audit.rs`).
///
/// Decision: a key of its own, not one derived from the token key. `offboard rotate-key`
/// replaces the token key; entries signed under a key that no longer exists could never be
/// checked again, so the audit key outlives every rotation. It lives outside the database
/// (`OFFBOARD_AUDIT_KEY`, else `audit.key` in the data folder, created on first start like
/// `secret.key`): whoever edits the database without it cannot sign an entry. Consoles that
/// share one PostgreSQL database must share this key too. `Debug` never shows it.
#[derive(Clone, Debug)]
pub struct AuditKey(Hidden<[u8; KEY_LEN]>);

impl AuditKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> AuditKey {
        AuditKey(Hidden::new(bytes))
    }

    /// A key given as text (base64 of 32 bytes, as `OFFBOARD_AUDIT_KEY` holds it).
    pub fn from_text(text: &str) -> Result<AuditKey, SecretError> {
        key_from_env(text)
            .map(AuditKey::from_bytes)
            .map_err(as_audit_error)
    }

    /// `env_key` (the value of [`AUDIT_KEY_ENV_VAR`]) when given, else `data_dir/audit.key`,
    /// creating that file with 32 random bytes on first start (what `offboard serve` does).
    pub fn load_or_create(data_dir: &Path, env_key: Option<&str>) -> Result<AuditKey, SecretError> {
        match env_key {
            Some(text) => AuditKey::from_text(text),
            None => load_or_create_key_file(&data_dir.join(AUDIT_KEY_FILE_NAME))
                .map(AuditKey::from_bytes)
                .map_err(as_audit_error),
        }
    }

    /// As [`AuditKey::load_or_create`], but never creates the file: None when there is no key
    /// (what `offboard audit verify` does: a new key would check nothing).
    pub fn find(data_dir: &Path, env_key: Option<&str>) -> Result<Option<AuditKey>, SecretError> {
        if let Some(text) = env_key {
            return AuditKey::from_text(text).map(Some);
        }
        let path = data_dir.join(AUDIT_KEY_FILE_NAME);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => read_key_file(&path)
                .map(|k| Some(AuditKey::from_bytes(k)))
                .map_err(as_audit_error),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// A random key that lives as long as this process: for databases opened without the
    /// console's key (tests, and commands that write no audit entry). An entry signed with it
    /// can be checked only by this process, so such a key can never pass for the real one.
    pub fn this_process() -> AuditKey {
        static KEY: std::sync::OnceLock<AuditKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            let mut bytes = [0u8; KEY_LEN];
            bytes.copy_from_slice(&Aes256Gcm::generate_key(OsRng));
            AuditKey::from_bytes(bytes)
        })
        .clone()
    }

    /// HMAC-SHA256 of `message` under this key.
    pub fn mac(&self, message: &[u8]) -> [u8; KEY_LEN] {
        hmac_sha256(self.0.expose(), message)
    }
}

/// The token key's messages, said of the audit key.
fn as_audit_error(e: SecretError) -> SecretError {
    match e {
        SecretError::BadEnvKey(detail) => SecretError::BadAuditEnvKey(detail),
        SecretError::KeyFileDamaged { path } => SecretError::AuditKeyFileDamaged { path },
        other => other,
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; KEY_LEN] {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn associated_data(team_id: TeamId) -> Vec<u8> {
    format!("offboard scim token, team {team_id}").into_bytes()
}

fn key_from_env(value: &str) -> Result<[u8; KEY_LEN], SecretError> {
    let bytes = BASE64
        .decode(value.trim())
        .map_err(|_| SecretError::BadEnvKey("the value is not valid base64".to_string()))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| SecretError::BadEnvKey(format!("the value decodes to {} bytes", bytes.len())))
}

fn decode_key_file(path: &Path, text: &str) -> Result<[u8; KEY_LEN], SecretError> {
    let damaged = || SecretError::KeyFileDamaged {
        path: path.to_path_buf(),
    };
    let bytes = BASE64.decode(text.trim()).map_err(|_| damaged())?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| damaged())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::KeyFile {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses a key file others can read: a leaked key decrypts every saved token, and
/// a warning in a log is too easy to miss.
fn check_key_file_permissions(path: &Path) -> Result<(), SecretError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(io_error(path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::KeyFileTooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    Ok(())
}

fn read_key_file(path: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    check_key_file_permissions(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => SecretError::KeyFileDamaged {
            path: path.to_path_buf(),
        },
        _ => io_error(path)(e),
    })?;
    decode_key_file(path, &text)
}

fn load_or_create_key_file(path: &Path) -> Result<[u8; KEY_LEN], SecretError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => return read_key_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(path)(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let key = Aes256Gcm::generate_key(OsRng);
    let mut fresh = [0u8; KEY_LEN];
    fresh.copy_from_slice(&key);

    // Written in full to a private temporary file, then linked into place: a crash never leaves
    // a half-written key, and when two servers start at once the loser reads the winner's key
    // instead of overwriting it (a hard link never replaces an existing file).
    let name = path
        .file_name()
        .map_or_else(|| KEY_FILE_NAME.into(), |n| n.to_string_lossy());
    let temporary = path.with_file_name(format!("{name}.new-{}", uuid::Uuid::new_v4().simple()));
    let written = write_private_file(&temporary, format!("{}\n", BASE64.encode(fresh)).as_bytes())
        .and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => Ok(fresh),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Creates `path` (which must not exist) readable by its owner only, from the first byte on.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> ScimToken {
        ScimToken::new("scim-token-abcdefghijklmnop-x7Q9")
    }

    fn env_box(seed: u8) -> SecretBox {
        SecretBox::load_or_create(Path::new("/nonexistent"), Some(&BASE64.encode([seed; 32])))
            .expect("env key")
    }

    #[test]
    fn round_trip_gives_back_the_token_and_hides_it_in_the_stored_text() {
        let secrets = env_box(7);
        let stored = secrets.encrypt(TeamId::new(1), &token()).expect("encrypt");
        assert!(stored.starts_with("v1:"), "{stored}");
        assert!(!stored.contains("x7Q9"));
        assert!(!stored.contains(token().expose()));
        assert_eq!(
            secrets.decrypt(TeamId::new(1), &stored).expect("decrypt"),
            token()
        );
    }

    #[test]
    fn every_encryption_uses_a_fresh_nonce() {
        let secrets = env_box(7);
        let a = secrets.encrypt(TeamId::new(1), &token()).expect("encrypt");
        let b = secrets.encrypt(TeamId::new(1), &token()).expect("encrypt");
        assert_ne!(a, b);
    }

    #[test]
    fn another_key_cannot_decrypt() {
        let stored = env_box(7)
            .encrypt(TeamId::new(1), &token())
            .expect("encrypt");
        let err = env_box(8)
            .decrypt(TeamId::new(1), &stored)
            .expect_err("wrong key");
        assert!(matches!(err, SecretError::CannotDecrypt), "{err:?}");
        assert!(err.to_string().contains("enter the token again"));
    }

    #[test]
    fn tampering_anywhere_is_detected() {
        let secrets = env_box(7);
        let stored = secrets.encrypt(TeamId::new(1), &token()).expect("encrypt");
        let raw = BASE64.decode(&stored[3..]).expect("base64");
        for i in 0..raw.len() {
            let mut changed = raw.clone();
            changed[i] ^= 0x01;
            let forged = format!("v1:{}", BASE64.encode(&changed));
            assert!(
                matches!(
                    secrets.decrypt(TeamId::new(1), &forged),
                    Err(SecretError::CannotDecrypt)
                ),
                "flipping byte {i} went unnoticed"
            );
        }
        let truncated = format!("v1:{}", BASE64.encode(&raw[..raw.len() - 1]));
        assert!(secrets.decrypt(TeamId::new(1), &truncated).is_err());
    }

    #[test]
    fn nasty_stored_values_are_refused_without_panicking() {
        let secrets = env_box(7);
        for stored in [
            "",
            "v1:",
            "v1:!!!",
            "v2:AAAA",
            "AAAA",
            "v1:AAAA",
            "v1:\u{1F600}",
        ] {
            assert!(
                secrets.decrypt(TeamId::new(1), stored).is_err(),
                "{stored:?}"
            );
        }
        assert!(matches!(
            secrets.decrypt(TeamId::new(1), "v2:AAAA"),
            Err(SecretError::UnknownFormat)
        ));
    }

    #[test]
    fn a_token_moved_to_another_team_does_not_decrypt() {
        let secrets = env_box(7);
        let stored = secrets.encrypt(TeamId::new(1), &token()).expect("encrypt");
        assert!(matches!(
            secrets.decrypt(TeamId::new(2), &stored),
            Err(SecretError::CannotDecrypt)
        ));
    }

    #[test]
    fn fingerprints_tell_tokens_apart_without_showing_them() {
        let a = env_box(1);
        let token = token();
        let print = a.fingerprint(TeamId::new(1), &token);
        assert_eq!(print, a.fingerprint(TeamId::new(1), &token), "stable");
        assert_eq!(print.len(), 64);
        assert!(!print.contains(token.expose()));
        assert_ne!(
            print,
            a.fingerprint(TeamId::new(1), &ScimToken::new("another-token-value"))
        );
        assert_ne!(
            print,
            a.fingerprint(TeamId::new(2), &token),
            "bound to the team"
        );
        assert_ne!(
            print,
            env_box(2).fingerprint(TeamId::new(1), &token),
            "bound to the key"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", env_box(7));
        assert_eq!(
            shown,
            "SecretBox { cipher: <hidden>, fingerprint_key: <hidden> }"
        );
    }

    /// The names in a folder: a key written through a temporary file leaves nothing else.
    fn files_in(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let first = SecretBox::load_or_create(&data_dir, None).expect("create");
        let path = data_dir.join(KEY_FILE_NAME);
        assert!(path.exists());
        #[cfg(unix)]
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(files_in(&data_dir), [KEY_FILE_NAME]);

        let stored = first.encrypt(TeamId::new(1), &token()).expect("encrypt");
        let second = SecretBox::load_or_create(&data_dir, None).expect("reuse");
        assert_eq!(
            second.decrypt(TeamId::new(1), &stored).expect("same key"),
            token()
        );
    }

    #[test]
    fn the_environment_key_wins_over_the_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let from_file = SecretBox::load_or_create(dir.path(), None).expect("file key");
        let env_key = BASE64.encode([42u8; 32]);
        let from_env = SecretBox::load_or_create(dir.path(), Some(&env_key)).expect("env key");
        let stored = from_env.encrypt(TeamId::new(1), &token()).expect("encrypt");
        assert!(from_file.decrypt(TeamId::new(1), &stored).is_err());
        assert_eq!(
            env_box(42)
                .decrypt(TeamId::new(1), &stored)
                .expect("decrypt"),
            token()
        );
    }

    #[test]
    fn with_an_environment_key_no_key_file_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        SecretBox::load_or_create(dir.path(), Some(&BASE64.encode([1u8; 32]))).expect("env key");
        assert!(!dir.path().join(KEY_FILE_NAME).exists());
    }

    #[test]
    fn a_bad_environment_key_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = BASE64.encode([9u8; 16]);
        for bad in [short.as_str(), "not base64 at all!", ""] {
            let err = SecretBox::load_or_create(dir.path(), Some(bad)).expect_err("bad key");
            let text = err.to_string();
            assert!(matches!(err, SecretError::BadEnvKey(_)), "{bad:?}");
            assert!(text.contains(KEY_ENV_VAR), "{text}");
            if !bad.is_empty() {
                assert!(!text.contains(bad), "{text}");
            }
        }
        let err = SecretBox::load_or_create(dir.path(), Some(&short)).expect_err("short");
        assert!(err.to_string().contains("16 bytes"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        SecretBox::load_or_create(dir.path(), None).expect("create");
        let path = dir.path().join(KEY_FILE_NAME);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = SecretBox::load_or_create(dir.path(), None).expect_err("too open");
        assert!(
            matches!(err, SecretError::KeyFileTooOpen { mode: 0o644, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_damaged_key_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE_NAME);
        write_private_file(&path, b"").expect("write");
        let err = SecretBox::load_or_create(dir.path(), None).expect_err("damaged");
        assert!(matches!(err, SecretError::KeyFileDamaged { .. }), "{err:?}");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"",
            "never overwritten"
        );

        std::fs::remove_file(&path).expect("rm");
        write_private_file(&path, BASE64.encode([1u8; 31]).as_bytes()).expect("write");
        assert!(matches!(
            SecretBox::load_or_create(dir.path(), None),
            Err(SecretError::KeyFileDamaged { .. })
        ));
    }

    #[test]
    fn the_audit_key_file_is_its_own_created_private_reused_and_never_made_by_find() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        assert!(AuditKey::find(&data_dir, None).expect("find").is_none());
        assert!(!data_dir.exists(), "find creates nothing");

        let first = AuditKey::load_or_create(&data_dir, None).expect("create");
        let path = data_dir.join(AUDIT_KEY_FILE_NAME);
        #[cfg(unix)]
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(files_in(&data_dir), [AUDIT_KEY_FILE_NAME]);
        let again = AuditKey::load_or_create(&data_dir, None).expect("reuse");
        let found = AuditKey::find(&data_dir, None)
            .expect("find")
            .expect("a key");
        assert_eq!(first.mac(b"entry"), again.mac(b"entry"));
        assert_eq!(first.mac(b"entry"), found.mac(b"entry"));

        // Apart from the token key: making (or rotating) that one leaves it alone.
        SecretBox::load_or_create(&data_dir, None).expect("token key");
        let after = AuditKey::load_or_create(&data_dir, None).expect("reuse");
        assert_eq!(first.mac(b"entry"), after.mac(b"entry"));
    }

    #[test]
    fn the_audit_key_from_the_environment_wins_and_is_checked_in_its_own_words() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = BASE64.encode([5u8; 32]);
        let from_env = AuditKey::load_or_create(dir.path(), Some(&text)).expect("env key");
        assert!(!dir.path().join(AUDIT_KEY_FILE_NAME).exists());
        assert_eq!(
            from_env.mac(b"x"),
            AuditKey::from_bytes([5u8; 32]).mac(b"x")
        );
        let err = AuditKey::find(dir.path(), Some("c2hvcnQ=")).expect_err("short");
        assert!(matches!(err, SecretError::BadAuditEnvKey(_)), "{err:?}");
        assert!(err.to_string().contains(AUDIT_KEY_ENV_VAR), "{err}");
        assert!(!err.to_string().contains("c2hvcnQ="), "{err}");

        write_private_file(&dir.path().join(AUDIT_KEY_FILE_NAME), b"damaged").expect("write");
        let err = AuditKey::find(dir.path(), None).expect_err("damaged");
        assert!(
            matches!(err, SecretError::AuditKeyFileDamaged { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("audit key file"), "{err}");
    }

    #[test]
    fn debug_hides_the_audit_key_and_this_process_key_is_stable() {
        assert_eq!(
            format!("{:?}", AuditKey::from_bytes([7; 32])),
            "AuditKey(<hidden>)"
        );
        assert_eq!(
            AuditKey::this_process().mac(b"x"),
            AuditKey::this_process().mac(b"x")
        );
    }
}
