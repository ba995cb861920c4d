//! Password hashing (argon2id) off the request threads and a few at a time.
//!
//! One argon2id hash with the `argon2` crate's defaults costs about 19 MiB of memory and tens
//! of milliseconds of one core. Run on the request threads, a burst of sign-ins would stall
//! every other request (the health check included) and take the process to gigabytes. So every
//! hash and every check runs on tokio's blocking pool, behind a semaphore sized to half the
//! machine's cores (at least one): the other half keeps answering requests, and memory stays
//! bounded by the permits, however many sign-ins wait.

use app::backend::ConsoleError;
use app::hidden::Hidden;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The hashes that may run at once on a machine with `cores` cores.
pub fn concurrent_hashes(cores: usize) -> usize {
    (cores / 2).max(1)
}

/// Hashes and checks passwords, at most `permits` at once, never on a request thread.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Passwords::new(concurrent_hashes(cores))
    }
}

impl Passwords {
    pub fn new(permits: usize) -> Passwords {
        Passwords {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn limited<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ConsoleError> {
        let failed =
            || ConsoleError::failed("Offboard could not check the password; see the server log.");
        let _permit = self.permits.acquire().await.map_err(|_| failed())?;
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            tracing::error!(error = %e, "a password hash did not finish");
            failed()
        })
    }

    /// The argon2id hash (PHC string) of `password`, with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<Hidden<String>, ConsoleError> {
        let password = Hidden::new(password.to_string());
        self.limited(move || hash_password(password.expose()))
            .await?
    }

    /// True if `password` matches `hash`; with no hash, a decoy is checked instead, so an
    /// unknown email takes as long as a known one (no account probing by timing).
    pub async fn matches(&self, password: &str, hash: Option<Hidden<String>>) -> bool {
        let password = Hidden::new(password.to_string());
        self.limited(move || {
            let hash = hash.unwrap_or_else(|| decoy_hash().clone());
            password_matches(password.expose(), &hash)
        })
        .await
        .unwrap_or(false)
    }
}

/// The argon2id hash (PHC string) of `password`, with a fresh salt. Slow on purpose: call it
/// through [`Passwords`], the only caller (private: no request thread can run it).
fn hash_password(password: &str) -> Result<Hidden<String>, ConsoleError> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| Hidden::new(h.to_string()))
        .map_err(|e| {
            tracing::error!(error = %e, "could not hash a password");
            ConsoleError::failed("Offboard could not store the password; see the server log.")
        })
}

/// True if `password` matches the stored hash. A damaged hash never matches. Private, like
/// [`hash_password`]: only [`Passwords`] runs it, on the blocking pool.
fn password_matches(password: &str, hash: &Hidden<String>) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(hash.expose()) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to compare against when the email has no password.
fn decoy_hash() -> &'static Hidden<String> {
    static DECOY: std::sync::OnceLock<Hidden<String>> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password("offboard decoy password, never a real one")
            .unwrap_or_else(|_| Hidden::new(String::new()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_cores_hash_and_never_none() {
        assert_eq!(concurrent_hashes(0), 1);
        assert_eq!(concurrent_hashes(1), 1);
        assert_eq!(concurrent_hashes(2), 1);
        assert_eq!(concurrent_hashes(3), 1);
        assert_eq!(concurrent_hashes(8), 4);
    }

    #[test]
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.expose().starts_with("$argon2id$"));
        assert!(!hash.expose().contains("correct horse"));
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse batterY", &hash));
        assert!(!password_matches("", &hash));
        // A damaged hash never matches, whatever is typed.
        assert!(!password_matches("x", &Hidden::new("not a hash".into())));
        assert!(!password_matches("", &Hidden::new(String::new())));
        // Two hashes of one password differ (fresh salt).
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_hashes_and_checks_and_never_runs_more_than_its_permits() {
        let passwords = Passwords::new(1);
        let hash = passwords.hash("correct horse battery").await.unwrap();
        assert!(
            passwords
                .matches("correct horse battery", Some(hash.clone()))
                .await
        );
        assert!(!passwords.matches("wrong", Some(hash)).await);
        // No hash: the decoy is checked, and nothing matches it by accident.
        assert!(!passwords.matches("offboard decoy password", None).await);
        // While the one permit is held, a check waits for it.
        let held = passwords.permits.clone().acquire_owned().await.unwrap();
        let mut waiting = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.matches("x", None).await }
        });
        // However slow the machine, a correct pool never finishes this without the permit.
        let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiting).await;
        assert!(early.is_err(), "a check ran without a permit");
        drop(held);
        assert!(!waiting.await.unwrap());
        assert_eq!(passwords.permits.available_permits(), 1);
    }
}
