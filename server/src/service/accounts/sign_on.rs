//! Single sign-on identities: who the company's sign-in service vouched for, kept by issuer
//! and subject, and the account each lands in.

use super::*;

impl Console {
    /// Signs in someone their company's sign-in service vouched for (`issuer`, `subject`, a
    /// verified email in an allowed domain). The identity is the issuer and subject:
    /// - known: its account, whatever the email says now;
    /// - new, with someone signed in here (`linking`): tied to that account, if the emails
    ///   agree (the person is signed in to both);
    /// - new, nobody signed in: a new account, but only if a team has granted the email a
    ///   membership (a verified email alone lets nobody in); never an existing account with a
    ///   password, nor one another subject of this issuer holds.
    ///
    /// A sign-on whose email is the account's proves that email: memberships granted to it
    /// are taken up.
    pub async fn sign_in_with_sso(
        &self,
        identity: &SsoIdentity<'_>,
        linking: Option<&Person>,
    ) -> Result<Person, AccountRefusal> {
        let email = normalise_email(identity.email).ok_or(AccountProblem::EmailInvalid)?;
        let known = self
            .storage
            .sso_account(identity.issuer, identity.subject)
            .await?;
        let record = match (known, linking) {
            (Some(id), Some(person)) if id != person.account => {
                return Err(ConsoleError::new(
                    "This sign-in of your company belongs to another account here. Sign out \
                     first to use it.",
                )
                .into())
            }
            (Some(id), _) => self
                .storage
                .account(id)
                .await?
                .ok_or(AccountProblem::NotAllowed)?,
            (None, Some(person)) => {
                if person.email != email {
                    return Err(ConsoleError::new(format!(
                        "You are signed in here as {}, but your company's sign-in says {email}. \
                         Only the same email can be linked.",
                        person.email
                    ))
                    .into());
                }
                self.link_identity(identity, person.account).await?;
                let person = person.clone();
                self.record_everywhere(&person, AuditAction::SignOnLinked, json!({}))
                    .await;
                self.storage
                    .account(person.account)
                    .await?
                    .ok_or(AccountProblem::NotAllowed)?
            }
            (None, None) => self.first_sign_on(identity, &email).await?,
        };
        if record.email == email {
            self.storage.prove_email(record.id).await?;
        }
        let person = Person::of(&record);
        self.record_sign_in(&person, AuditAction::SignIn, false)
            .await;
        Ok(person)
    }

    /// The account a new sign-on identity lands in, when nobody is signed in.
    async fn first_sign_on(
        &self,
        identity: &SsoIdentity<'_>,
        email: &str,
    ) -> Result<AccountRecord, AccountRefusal> {
        match self.storage.account_by_email(email).await? {
            Some(existing) if existing.password_hash.is_some() => {
                Err(AccountProblem::PasswordAccountExists.into())
            }
            // An account made by single sign-on before identities were kept (or through
            // another issuer): it takes this identity, unless this issuer already vouched
            // for it as another subject (the email was given to someone else since).
            Some(existing) => {
                if self.storage.has_sso(existing.id, identity.issuer).await? {
                    return Err(ConsoleError::new(
                        "Another person of your company's sign-in already uses this email here. \
                         Ask a console owner to sort the accounts out.",
                    )
                    .into());
                }
                self.link_identity(identity, existing.id).await?;
                Ok(existing)
            }
            None => {
                if self.storage.waiting_memberships(email).await? == 0 {
                    return Err(AccountProblem::NotAllowed.into());
                }
                let name = identity
                    .name
                    .and_then(clean_name)
                    .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
                let record = self
                    .create_account(&NewAccount {
                        email: email.to_string(),
                        name,
                        password_hash: None,
                        console_owner: false,
                        email_proven: true,
                    })
                    .await?;
                self.link_identity(identity, record.id).await?;
                Ok(record)
            }
        }
    }

    async fn link_identity(
        &self,
        identity: &SsoIdentity<'_>,
        account: AccountId,
    ) -> Result<(), AccountRefusal> {
        match self
            .storage
            .link_sso(identity.issuer, identity.subject, account)
            .await
        {
            Err(StorageError::IdentityTaken) => Err(ConsoleError::new(
                "This sign-in of your company belongs to another account here.",
            )
            .into()),
            other => Ok(other?),
        }
    }
}
