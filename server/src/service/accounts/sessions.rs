//! Sessions and the signed-in person: who a session belongs to, their team, what the header
//! shows, changing one's password and signing out everywhere.

use super::*;

impl Console {
    /// The person a session belongs to, if the session is still valid: the account exists,
    /// its epoch has not moved, and the absolute lifetime has not passed.
    pub async fn person(
        &self,
        session: &SignedIn,
        lifetime: Duration,
    ) -> Result<Option<Person>, ConsoleError> {
        if self.clock.now() - session.since > lifetime {
            return Ok(None);
        }
        let record = self
            .storage
            .account(session.account)
            .await
            .map_err(storage_failed)?;
        Ok(record
            .filter(|r| r.session_epoch == session.epoch)
            .map(|r| Person::of(&r)))
    }

    /// A new session's contents for `person`.
    pub async fn session_for(&self, person: &Person) -> Result<SignedIn, ConsoleError> {
        let record = self
            .storage
            .account(person.account)
            .await
            .map_err(storage_failed)?
            .ok_or_else(|| ConsoleError::not_found("This account does not exist any more."))?;
        Ok(SignedIn {
            account: record.id,
            epoch: record.session_epoch,
            since: self.clock.now(),
            team: None,
        })
    }

    /// The person as a member of `wanted` (when they belong to it), else of their first team;
    /// None when they belong to no team.
    pub async fn member(
        &self,
        person: &Person,
        wanted: Option<TeamId>,
    ) -> Result<Option<Member>, ConsoleError> {
        let teams = self
            .storage
            .memberships(person.account)
            .await
            .map_err(storage_failed)?;
        let chosen = wanted
            .and_then(|w| teams.iter().find(|(t, _)| t.id == w))
            .or_else(|| teams.first());
        Ok(chosen.map(|(team, role)| Member {
            person: person.clone(),
            team: team.id,
            team_name: team.name.clone(),
            role: *role,
        }))
    }

    /// What the header and the Account page show.
    pub async fn signed_in_view(
        &self,
        person: &Person,
        member: Option<&Member>,
    ) -> Result<SignedInView, ConsoleError> {
        let teams = self
            .storage
            .memberships(person.account)
            .await
            .map_err(storage_failed)?;
        Ok(SignedInView {
            email: person.email.clone(),
            name: person.name.clone(),
            console_owner: person.console_owner,
            has_password: person.has_password,
            team: member.map(choice_of),
            teams: teams
                .into_iter()
                .map(|(t, role)| TeamChoice {
                    id: t.id,
                    name: t.name,
                    role,
                })
                .collect(),
            // Counted by the header's own read (`VisitorConsole::whoami`), which has the team.
            waiting: 0,
        })
    }

    /// Changes the person's own password; every other session of theirs ends.
    pub async fn change_password(
        &self,
        person: &Person,
        current: &str,
        new: &str,
        again: &str,
    ) -> Result<(), AccountRefusal> {
        let record = self
            .storage
            .account(person.account)
            .await?
            .ok_or(AccountProblem::WrongPassword)?;
        if let Some(problem) = new_password_problem(new, again) {
            return Err(problem.into());
        }
        let Some(current_hash) = record.password_hash.clone() else {
            return Err(AccountProblem::WrongPassword.into());
        };
        if !self.passwords.matches(current, Some(current_hash)).await {
            return Err(AccountProblem::WrongPassword.into());
        }
        let hash = self.passwords.hash(new).await?;
        self.storage.set_password(person.account, &hash).await?;
        self.record_everywhere(person, AuditAction::PasswordChanged, json!({}))
            .await;
        Ok(())
    }

    /// Ends every session of the person (this one included).
    pub async fn sign_out_everywhere(&self, person: &Person) -> Result<(), ConsoleError> {
        self.storage
            .end_sessions(person.account)
            .await
            .map_err(storage_failed)?;
        self.record_everywhere(person, AuditAction::SignedOutEverywhere, json!({}))
            .await;
        Ok(())
    }
}
