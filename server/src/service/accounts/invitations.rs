//! Invitations: an owner makes one for one email (and may revoke it); joining accepts it, as
//! the signed-in person or as a new local account.

use super::*;
use model::Named;

impl OwnerDesk<'_> {
    /// An owner makes an invitation link to their team with `role`, for one person's email:
    /// only an account with that email can accept it.
    pub async fn invite(
        &self,
        email: &str,
        role: Role,
        base: &str,
    ) -> Result<NewLink, ConsoleError> {
        let by = self.by()?;
        let email = normalise_email(email).ok_or_else(|| {
            ConsoleError::new(
                "Enter the email address of the person you invite: only they can accept it.",
            )
        })?;
        let (secret, expires) = self
            .console
            .new_link(
                LinkPurpose::Invitation,
                Some(self.team),
                Some(role),
                Some(email.clone()),
                by,
                Duration::days(INVITATION_DAYS),
            )
            .await?;
        self.console
            .record_for(
                self.team,
                by,
                AuditAction::InvitationMade,
                json!({
                    "email": email,
                    "role": role.key(),
                    "expires_at": crate::service::views::stamp(expires),
                }),
            )
            .await;
        Ok(NewLink {
            what: format!(
                "Invitation for {email} to {} as {} (works once, only for {email})",
                self.team_name,
                role.key()
            ),
            url: format!("{base}/join?code={secret}"),
            expires: crate::service::views::stamp(expires),
        })
    }

    /// An owner revokes one of the team's open invitations.
    pub async fn revoke_invitation(&self, id: &str) -> Result<(), ConsoleError> {
        let by = self.by()?;
        let now = self.console.clock.now();
        let open = self
            .console
            .storage
            .open_invitations(self.team, now)
            .await
            .map_err(storage_failed)?;
        let Some(link) = open.into_iter().find(|l| l.secret_hash == id.trim()) else {
            return Err(ConsoleError::not_found(
                "That invitation is not open any more (used, expired or revoked).",
            ));
        };
        if !self
            .console
            .storage
            .revoke_invitation(self.team, &link.secret_hash, now)
            .await
            .map_err(storage_failed)?
        {
            return Err(ConsoleError::not_found(
                "That invitation is not open any more (used, expired or revoked).",
            ));
        }
        self.console
            .record_for(
                self.team,
                by,
                AuditAction::InvitationRevoked,
                json!({
                    "email": link.email,
                    "role": link.role.map(Role::key),
                    "made_by": link.created_by,
                }),
            )
            .await;
        Ok(())
    }
}

impl Console {
    /// Joins the team of an invitation: as `person` when signed in, else as a new local
    /// account made from the form. An invitation is for one email: only the account with that
    /// email accepts it (a new account gets exactly that email), and only while its maker is
    /// still an owner. It works once; the account gets this team's membership and nothing
    /// else (memberships granted to the email by other teams wait for a proven sign-in).
    pub async fn join(
        &self,
        secret: &str,
        person: Option<&Person>,
        form: Option<NewPerson<'_>>,
    ) -> Result<(Person, TeamId), AccountRefusal> {
        let hash = link_hash(secret);
        let now = self.clock.now();
        // The cheap checks first: the link opens, and names this person.
        let link = self
            .storage
            .open_link(&hash, LinkPurpose::Invitation, now)
            .await?
            .ok_or(AccountProblem::LinkInvalid)?;
        // Invitations made before they named a person open for nobody.
        let invited = link.email.clone().ok_or(AccountProblem::LinkInvalid)?;
        let accepted = match (person, form) {
            (Some(person), _) => {
                if person.email != invited {
                    return Err(AccountProblem::InvitationForAnotherEmail.into());
                }
                let account = self
                    .storage
                    .account(person.account)
                    .await?
                    .ok_or(AccountProblem::LinkInvalid)?;
                self.storage
                    .accept_invitation(&hash, Joiner::Existing(&account), now)
                    .await?
            }
            (None, Some(form)) => {
                let typed = if form.email.trim().is_empty() {
                    invited.clone()
                } else {
                    normalise_email(form.email).ok_or(AccountProblem::EmailInvalid)?
                };
                if typed != invited {
                    return Err(AccountProblem::InvitationForAnotherEmail.into());
                }
                let (_, name) = NewPerson {
                    email: &invited,
                    ..form
                }
                .checked()?;
                if self.storage.account_by_email(&invited).await?.is_some() {
                    return Err(AccountProblem::EmailTaken.into());
                }
                let password_hash = self.passwords.hash(form.password).await?;
                let account = NewAccount {
                    email: invited.clone(),
                    name,
                    password_hash: Some(password_hash),
                    console_owner: false,
                    email_proven: false,
                };
                match self
                    .storage
                    .accept_invitation(&hash, Joiner::New(&account), now)
                    .await
                {
                    Err(StorageError::EmailTaken) => return Err(AccountProblem::EmailTaken.into()),
                    other => other?,
                }
            }
            (None, None) => return Err(AccountProblem::NameMissing.into()),
        };
        let (account, team, role, link) = accepted.ok_or(AccountProblem::LinkInvalid)?;
        let person = Person::of(&account);
        self.record_for(
            team,
            &person,
            AuditAction::InvitationAccepted,
            json!({ "email": person.email, "role": role.key(), "invited_by": link.created_by }),
        )
        .await;
        Ok((person, team))
    }
}
