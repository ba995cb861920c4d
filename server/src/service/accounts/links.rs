//! Links: their secrets (32 random bytes, only the SHA-256 kept), the first owner's setup
//! link, password-reset links, and what a link's page is told about it.

use super::*;

/// A link's secret (32 random bytes, URL-safe) and the hash stored for it.
pub fn new_link_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let hash = link_hash(&secret);
    (secret, hash)
}

/// What is stored for a link's secret.
pub fn link_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.trim().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Console {
    /// Whether nobody has an account yet (the setup link is still the way in).
    pub async fn needs_setup(&self) -> Result<bool, ConsoleError> {
        Ok(self.storage.account_count().await.map_err(storage_failed)? == 0)
    }

    /// A new setup link's secret while the console has no account (a new one each start:
    /// the old ones stay valid until they expire); None once someone has an account.
    pub async fn setup_link(&self) -> Result<Option<String>, ConsoleError> {
        if self.storage.account_count().await.map_err(storage_failed)? > 0 {
            return Ok(None);
        }
        let (secret, hash) = new_link_secret();
        let now = self.clock.now();
        self.storage
            .save_link(&LinkRecord {
                secret_hash: hash,
                purpose: LinkPurpose::Setup,
                team_id: None,
                role: None,
                email: None,
                created_by: crate::service::audit::OFFBOARD.to_string(),
                created_at: now,
                expires_at: now + Duration::hours(SETUP_LINK_HOURS),
            })
            .await
            .map_err(storage_failed)?;
        Ok(Some(secret))
    }

    /// True if `secret` opens a link for `purpose` now (to show its form, or an error first).
    pub async fn link_is_open(&self, secret: &str, purpose: LinkPurpose) -> bool {
        matches!(
            self.storage
                .open_link(&link_hash(secret), purpose, self.clock.now())
                .await,
            Ok(Some(_))
        )
    }

    /// What a setup (`setup`), invitation (`invitation`) or reset (`reset`) link is, for its
    /// page: whether it still works, and an invitation's team and role.
    pub async fn link_info(
        &self,
        purpose: &str,
        secret: &str,
        signed_in_as: Option<String>,
    ) -> Result<app::team::LinkInfo, ConsoleError> {
        let purpose = match purpose {
            "setup" => LinkPurpose::Setup,
            "invitation" => LinkPurpose::Invitation,
            "reset" => LinkPurpose::Reset,
            _ => return Err(ConsoleError::not_found("Unknown kind of link.")),
        };
        let (team_name, role, email) = match purpose {
            LinkPurpose::Invitation => match self.invitation(secret).await {
                Some((team, role, email)) => (Some(team), Some(role), Some(email)),
                None => (None, None, None),
            },
            _ => (None, None, None),
        };
        Ok(app::team::LinkInfo {
            valid: self.link_is_open(secret, purpose).await,
            team_name,
            role,
            email,
            signed_in_as,
        })
    }

    /// The team an invitation is for, the role it gives and the email it was made for, to
    /// show on the Join page.
    pub async fn invitation(&self, secret: &str) -> Option<(String, Role, String)> {
        let link = self
            .storage
            .open_link(
                &link_hash(secret),
                LinkPurpose::Invitation,
                self.clock.now(),
            )
            .await
            .ok()??;
        let team = self.storage.team(link.team_id?).await.ok()??;
        Some((team.name, link.role?, link.email?))
    }

    /// Creates the first owner from the setup link: a console owner, and owner of the
    /// built-in team.
    pub async fn complete_setup(
        &self,
        secret: &str,
        form: NewPerson<'_>,
    ) -> Result<Person, AccountRefusal> {
        let (email, name) = form.checked()?;
        // The cheap checks first: a password is hashed only for a link that opens.
        if self.storage.account_count().await? > 0
            || !self.link_is_open(secret, LinkPurpose::Setup).await
        {
            return Err(AccountProblem::LinkInvalid.into());
        }
        let password_hash = self.passwords.hash(form.password).await?;
        if self
            .storage
            .use_link(&link_hash(secret), LinkPurpose::Setup, self.clock.now())
            .await?
            .is_none()
        {
            return Err(AccountProblem::LinkInvalid.into());
        }
        let record = self
            .create_account(&NewAccount {
                email,
                name,
                password_hash: Some(password_hash),
                console_owner: true,
                email_proven: false,
            })
            .await?;
        let person = Person::of(&record);
        self.storage
            .set_member(
                TeamId::BUILT_IN,
                &person.email,
                Role::Owner,
                &person.email,
                Some(person.account),
            )
            .await?;
        self.record_for(
            TeamId::BUILT_IN,
            &person,
            AuditAction::MemberAdded,
            json!({ "email": person.email, "role": "owner", "how": "first owner (setup link)" }),
        )
        .await;
        Ok(person)
    }

    /// Sets a new password from a reset link; every session of the account ends.
    pub async fn complete_reset(
        &self,
        secret: &str,
        password: &str,
        again: &str,
    ) -> Result<Person, AccountRefusal> {
        if let Some(problem) = new_password_problem(password, again) {
            return Err(problem.into());
        }
        // The cheap check first: a password is hashed only for a link that opens.
        if !self.link_is_open(secret, LinkPurpose::Reset).await {
            return Err(AccountProblem::LinkInvalid.into());
        }
        let hash = self.passwords.hash(password).await?;
        let link = self
            .storage
            .use_link(&link_hash(secret), LinkPurpose::Reset, self.clock.now())
            .await?
            .ok_or(AccountProblem::LinkInvalid)?;
        let email = link.email.ok_or(AccountProblem::LinkInvalid)?;
        let account = self
            .storage
            .account_by_email(&email)
            .await?
            .ok_or(AccountProblem::LinkInvalid)?;
        self.storage.set_password(account.id, &hash).await?;
        let person = Person::of(&account);
        self.record_everywhere(
            &person,
            AuditAction::PasswordChanged,
            json!({ "how": "reset link" }),
        )
        .await;
        Ok(person)
    }

    pub(super) async fn new_link(
        &self,
        purpose: LinkPurpose,
        team_id: Option<TeamId>,
        role: Option<Role>,
        email: Option<String>,
        by: &Person,
        lasts: Duration,
    ) -> Result<(String, DateTime<Utc>), ConsoleError> {
        let (secret, hash) = new_link_secret();
        let now = self.clock.now();
        let expires_at = now + lasts;
        self.storage
            .save_link(&LinkRecord {
                secret_hash: hash,
                purpose,
                team_id,
                role,
                email,
                created_by: by.email.clone(),
                created_at: now,
                expires_at,
            })
            .await
            .map_err(storage_failed)?;
        Ok((secret, expires_at))
    }
}

impl ConsoleOwnerDesk<'_> {
    /// A console owner makes a password-reset link for a local account (the only way back in
    /// for someone who forgot their password). Its secret goes into the returned link only.
    pub async fn reset_link(&self, email: &str, base: &str) -> Result<NewLink, ConsoleError> {
        let owner = self.person;
        let email = typed_email(email)?;
        let account = self
            .console
            .storage
            .account_by_email(&email)
            .await
            .map_err(storage_failed)?
            .filter(|a| a.password_hash.is_some())
            .ok_or_else(|| {
                ConsoleError::not_found(format!(
                    "{email} has no password here (no account, or they sign in through single \
                     sign-on)."
                ))
            })?;
        let link = self
            .console
            .new_link(
                LinkPurpose::Reset,
                None,
                None,
                Some(account.email.clone()),
                owner,
                Duration::hours(RESET_LINK_HOURS),
            )
            .await?;
        self.console
            .record_everywhere(
                &Person::of(&account),
                AuditAction::PasswordResetLinkMade,
                json!({ "by": owner.actor().name(None) }),
            )
            .await;
        Ok(NewLink {
            what: format!("Password reset for {email}"),
            url: format!("{base}/reset?code={}", link.0),
            expires: crate::service::views::stamp(link.1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_secrets_are_random_and_only_their_hash_is_kept() {
        let (a, hash_a) = new_link_secret();
        let (b, _) = new_link_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(link_hash(&a), hash_a);
        assert_eq!(link_hash(&format!(" {a}\n")), hash_a);
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }
}
