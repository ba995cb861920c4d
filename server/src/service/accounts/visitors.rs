//! What the Account, Team, Teams, sign-in and link pages read (the server functions'
//! `AccountsBackend`), for whoever is visiting: nobody, a person, or a member of a team. A
//! team's page is read through the member's viewer handle; the Teams page through the console
//! owner's.

use super::{Member, Person};
use crate::service::Console;
use app::backend::{AccountsBackend, ConsoleError};
use app::team::{LinkInfo, NewLink, SignInOptions, SignedInView, TeamPage, TeamSummary};
use async_trait::async_trait;
use std::sync::Arc;

/// The server functions' view of the visitor: what the Account, Team and Teams pages read.
pub struct VisitorConsole {
    console: Arc<Console>,
    /// Who is signed in, if anyone.
    person: Option<Person>,
    /// Their membership in the team the console shows, if any.
    member: Option<Member>,
    /// The single sign-on button's name, when single sign-on is set up.
    sso: Option<String>,
}

impl VisitorConsole {
    pub fn new(
        console: Arc<Console>,
        person: Option<Person>,
        member: Option<Member>,
        sso: Option<String>,
    ) -> VisitorConsole {
        VisitorConsole {
            console,
            person,
            member,
            sso,
        }
    }

    fn person(&self) -> Result<&Person, ConsoleError> {
        self.person
            .as_ref()
            .ok_or_else(|| ConsoleError::forbidden("Sign in first."))
    }
}

#[async_trait]
impl AccountsBackend for VisitorConsole {
    async fn sign_in_options(&self) -> Result<SignInOptions, ConsoleError> {
        Ok(SignInOptions {
            sso: self.sso.clone(),
            needs_setup: self.console.needs_setup().await?,
        })
    }

    async fn whoami(&self) -> Result<Option<SignedInView>, ConsoleError> {
        let Some(person) = self.person.as_ref() else {
            return Ok(None);
        };
        let mut view = self
            .console
            .signed_in_view(person, self.member.as_ref())
            .await?;
        // The header's count: what waits for them in the team shown (Overview lists it).
        if let Some(member) = self.member.as_ref() {
            view.waiting = self
                .console
                .for_member(member)
                .as_viewer()?
                .waiting_for_you()
                .await?
                .count();
        }
        Ok(Some(view))
    }

    async fn team_page(&self, new_link: Option<NewLink>) -> Result<TeamPage, ConsoleError> {
        let member = self
            .member
            .as_ref()
            .ok_or_else(|| ConsoleError::not_found("You are not a member of any team yet."))?;
        let mut page = self
            .console
            .for_member(member)
            .as_viewer()?
            .team_page()
            .await?;
        page.new_link = new_link;
        Ok(page)
    }

    async fn webhook_page(
        &self,
        new_secret: Option<String>,
    ) -> Result<Option<app::team::WebhookPage>, ConsoleError> {
        let Some(member) = self.member.as_ref() else {
            return Ok(None);
        };
        let team = self.console.for_member(member);
        match team.as_owner() {
            Ok(owner) => owner.webhook_page(new_secret).await.map(Some),
            Err(_) => Ok(None),
        }
    }

    async fn email_choices(&self) -> Result<Option<app::team::EmailChoices>, ConsoleError> {
        match &self.person {
            Some(person) => self.console.email_choices(person).await.map(Some),
            None => Ok(None),
        }
    }

    async fn retention_page(&self) -> Result<Option<app::team::RetentionPage>, ConsoleError> {
        let Some(member) = self.member.as_ref() else {
            return Ok(None);
        };
        let team = self.console.for_member(member);
        match team.as_owner() {
            Ok(owner) => owner.retention_page().await.map(Some),
            Err(_) => Ok(None),
        }
    }

    async fn console_teams(&self) -> Result<Vec<TeamSummary>, ConsoleError> {
        self.console
            .as_console_owner(self.person()?)?
            .all_teams()
            .await
    }

    async fn link_info(&self, purpose: String, code: String) -> Result<LinkInfo, ConsoleError> {
        let signed_in_as = self.person.as_ref().map(|p| p.email.clone());
        self.console.link_info(&purpose, &code, signed_in_as).await
    }
}
