//! Teams and members: the Team page, an owner's settings and members, and what a console
//! owner does across teams (create one, give an ownerless one an owner).

use super::*;
use model::Named;

impl ViewerDesk<'_> {
    /// The Team page: the team and its members (any member may see who is in their team);
    /// owners also see the invitations that still open.
    pub async fn team_page(&self) -> Result<TeamPage, ConsoleError> {
        let storage = self.console.storage.as_ref();
        let members = storage.members(self.team).await.map_err(storage_failed)?;
        let settings = storage
            .team_settings(self.team)
            .await
            .map_err(storage_failed)?;
        let invitations = if self.as_owner().is_ok() {
            storage
                .open_invitations(self.team, self.console.clock.now())
                .await
                .map_err(storage_failed)?
                .into_iter()
                .filter_map(invitation_view)
                .collect()
        } else {
            Vec::new()
        };
        Ok(TeamPage {
            team: TeamChoice {
                id: self.team,
                name: self.team_name.clone(),
                role: self.role,
            },
            members: members.into_iter().map(member_view).collect(),
            invitations,
            new_link: None,
            settings,
        })
    }
}

impl OwnerDesk<'_> {
    /// The signed-in owner who manages the team (the service driven directly has none).
    pub(super) fn by(&self) -> Result<&Person, ConsoleError> {
        self.person.as_ref().ok_or_else(|| {
            ConsoleError::forbidden("Only a signed-in owner manages the team's members.")
        })
    }

    /// An owner changes the team's settings (two-person approval).
    pub async fn save_settings(
        &self,
        settings: app::team::TeamSettings,
    ) -> Result<(), ConsoleError> {
        let by = self.by()?;
        self.console
            .storage
            .save_team_settings(self.team, &settings)
            .await
            .map_err(storage_failed)?;
        self.console
            .record_for(
                self.team,
                by,
                AuditAction::TeamSettingsChanged,
                json!({
                    "approval": settings.approval.key(),
                    "approve_deactivations": settings.approve_deactivations,
                }),
            )
            .await;
        Ok(())
    }

    /// An owner adds a member by email or changes a member's role. A new member's membership
    /// belongs to their account at once if that account has proven its email; otherwise it
    /// waits for a sign-in that proves it (an account with only a password is invited
    /// instead). The last owner cannot step down: checked in the same transaction as the
    /// change, so two owners demoting each other at once cannot both pass.
    pub async fn set_member(&self, email: &str, role: Role) -> Result<(), ConsoleError> {
        let by = self.by()?;
        let email = typed_email(email)?;
        let change = self.console.grant(self.team, &email, role, by).await?;
        let (action, details) = match change.before {
            None => (
                AuditAction::MemberAdded,
                json!({ "email": email, "role": role.key() }),
            ),
            Some(was) => (
                AuditAction::MemberRoleChanged,
                json!({ "email": email, "role": role.key(), "was": was.key() }),
            ),
        };
        self.console
            .record_for(self.team, by, action, details)
            .await;
        Ok(())
    }

    /// An owner removes a member (or themselves, unless they are the last owner).
    pub async fn remove_member(&self, email: &str) -> Result<(), ConsoleError> {
        let by = self.by()?;
        let email = email.trim().to_lowercase();
        let Some(role) = self
            .console
            .storage
            .remove_member(self.team, &email)
            .await
            .map_err(member_change_failed)?
        else {
            return Err(ConsoleError::not_found(format!(
                "{email} is not a member of this team."
            )));
        };
        self.console
            .record_for(
                self.team,
                by,
                AuditAction::MemberRemoved,
                json!({ "email": email, "role": role.key() }),
            )
            .await;
        Ok(())
    }
}

impl Console {
    /// Gives `email` `role` in `team`, bound to their account if it proved its email.
    pub(super) async fn grant(
        &self,
        team: TeamId,
        email: &str,
        role: Role,
        by: &Person,
    ) -> Result<crate::storage::MemberChange, ConsoleError> {
        let account = if email == by.email {
            Some(by.account)
        } else {
            self.storage
                .account_by_email(email)
                .await
                .map_err(storage_failed)?
                .filter(|a| a.email_proven)
                .map(|a| a.id)
        };
        self.storage
            .set_member(team, email, role, &by.email, account)
            .await
            .map_err(member_change_failed)
    }
}

impl ConsoleOwnerDesk<'_> {
    /// Every team, for a console owner's Teams page.
    pub async fn all_teams(&self) -> Result<Vec<TeamSummary>, ConsoleError> {
        let _person = self.person;
        let storage = self.console.storage.as_ref();
        let teams = storage.teams().await.map_err(storage_failed)?;
        let mut out = Vec::with_capacity(teams.len());
        for team in teams {
            let members = storage.members(team.id).await.map_err(storage_failed)?;
            out.push(TeamSummary {
                id: team.id,
                name: team.name,
                members: u32::try_from(members.len()).unwrap_or(u32::MAX),
                owners: members
                    .into_iter()
                    .filter(|m| m.role == Role::Owner)
                    .map(|m| m.email)
                    .collect(),
            });
        }
        Ok(out)
    }

    /// A console owner creates a team and becomes its first owner (they can add other
    /// owners and leave later).
    pub async fn create_team(&self, name: &str) -> Result<TeamId, ConsoleError> {
        let person = self.person;
        let name = clean_name(name)
            .ok_or_else(|| ConsoleError::new("Give the team a name (up to 100 characters)."))?;
        let team = self
            .console
            .storage
            .create_team(&name)
            .await
            .map_err(storage_failed)?;
        self.console
            .storage
            .set_member(
                team.id,
                &person.email,
                Role::Owner,
                &person.email,
                Some(person.account),
            )
            .await
            .map_err(storage_failed)?;
        self.console
            .record_for(
                team.id,
                person,
                AuditAction::TeamCreated,
                json!({ "name": team.name }),
            )
            .await;
        Ok(team.id)
    }

    /// A console owner gives a team that has no owner left an owner (`email`, themselves
    /// included). Only an ownerless team: a console owner does not otherwise reach into teams.
    pub async fn give_owner(&self, team: TeamId, email: &str) -> Result<(), ConsoleError> {
        let person = self.person;
        let email = typed_email(email)?;
        let record = self
            .console
            .storage
            .team(team)
            .await
            .map_err(storage_failed)?
            .ok_or_else(|| ConsoleError::not_found("That team does not exist."))?;
        let members = self
            .console
            .storage
            .members(team)
            .await
            .map_err(storage_failed)?;
        if members.iter().any(|m| m.role == Role::Owner) {
            return Err(ConsoleError::new(format!(
                "{} has an owner: its owners manage its members.",
                record.name
            )));
        }
        let change = self
            .console
            .grant(team, &email, Role::Owner, person)
            .await?;
        self.console
            .record_for(
                team,
                person,
                AuditAction::MemberAdded,
                json!({
                    "email": email,
                    "role": "owner",
                    "was": change.before.map(Role::key),
                    "how": "a console owner gave the ownerless team an owner",
                }),
            )
            .await;
        Ok(())
    }
}

fn member_change_failed(e: StorageError) -> ConsoleError {
    match e {
        StorageError::LastOwner => {
            ConsoleError::new("A team needs at least one owner: make someone else an owner first.")
        }
        other => storage_failed(other),
    }
}
