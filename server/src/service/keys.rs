//! Re-encrypting every saved SCIM token under a new key (`offboard rotate-key`): all of them or
//! none, in one transaction, with the fingerprints previews and runs recorded moved along.

use crate::secret::SecretBox;
use crate::storage::{Storage, StorageError, TokenReplacement};
use app::hidden::Hidden;

/// Why the tokens were not re-encrypted. Nothing changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "the saved token of team {0} cannot be decrypted with the current key, so nothing was \
         changed. Check that OFFBOARD_SECRET_KEY (or the key file) is the key the console runs with."
    )]
    CurrentKeyWrong(String),
    #[error("could not encrypt a token with the new key; nothing was changed")]
    Encrypt,
    #[error("the database refused the change, so nothing was changed: {0}")]
    Storage(#[from] StorageError),
}

/// Re-encrypts every saved token from `current` to `new`; returns how many there were.
pub async fn rotate_key(
    storage: &dyn Storage,
    current: &SecretBox,
    new: &SecretBox,
) -> Result<usize, RotationError> {
    let saved = storage.saved_tokens().await?;
    let mut replacements = Vec::with_capacity(saved.len());
    for token in saved {
        let plain = current
            .decrypt(token.team_id, token.ciphertext.expose())
            .map_err(|_| RotationError::CurrentKeyWrong(token.team_id.to_string()))?;
        let new_ciphertext = new
            .encrypt(token.team_id, &plain)
            .map_err(|_| RotationError::Encrypt)?;
        replacements.push(TokenReplacement {
            old_fingerprint: current.fingerprint(token.team_id, &plain),
            new_fingerprint: new.fingerprint(token.team_id, &plain),
            new_ciphertext: Hidden::new(new_ciphertext),
            saved: token,
        });
    }
    storage.replace_saved_tokens(&replacements).await?;
    Ok(replacements.len())
}
