//! The role-typed handles of a team's service: what a viewer, an operator, an owner and a
//! console owner may do, each a type whose methods exist only on it. A handle is made only by
//! checking the request's role (`TeamConsole::as_viewer`, `as_operator`, `as_owner`;
//! `Console::as_console_owner`), so a call nobody checked does not compile.
//!
//! Roles nest: an operator's handle gives a viewer's ([`OperatorDesk::viewer`]), an owner's
//! an operator's, without checking again. The server functions' [`ConsoleBackend`] is only a
//! dispatch: each of its methods takes the handle it needs, then calls it.

use super::people::Person;
use super::permits::{self, Need, Operate, Own, Permit, View};
use super::{Console, TeamConsole};
use app::backend::{
    ConnectionForm, ConnectionView, ConsoleBackend, ConsoleError, Diagnosis, JobCommand,
    JobEventView, JobResultsPage, JobView, PreviewRowsPage, PreviewSummary, StorageStatus,
};
use app::ids::{JobId, PreviewId};
use app::model::{Action, PreviewOutcome, SiteUser};
use async_trait::async_trait;

/// What a viewer may do: read the team's history, progress, previews, reports and audit trail.
pub struct ViewerDesk<'a> {
    on: &'a TeamConsole,
    pub(super) permit: Permit<View>,
}

/// What an operator may do: make previews, start, pause, resume and cancel runs, ask for and
/// decline approvals, check the connection.
pub struct OperatorDesk<'a> {
    on: &'a TeamConsole,
    pub(super) permit: Permit<Operate>,
}

/// What an owner may do: manage members, invitations, the team's settings and the site
/// connection.
pub struct OwnerDesk<'a> {
    on: &'a TeamConsole,
    pub(super) permit: Permit<Own>,
}

/// What a console owner may do: see and create teams, give an ownerless team an owner, make
/// password-reset links.
pub struct ConsoleOwnerDesk<'a> {
    pub(super) console: &'a Console,
    pub(super) person: &'a Person,
}

impl TeamConsole {
    fn permit<N: Need>(&self) -> Result<Permit<N>, ConsoleError> {
        permits::check(self.role, self.team, &self.team_name)
    }

    /// The viewer's handle: every member has one.
    pub fn as_viewer(&self) -> Result<ViewerDesk<'_>, ConsoleError> {
        Ok(ViewerDesk {
            on: self,
            permit: self.permit()?,
        })
    }

    /// The operator's handle, or a refusal naming the role needed.
    pub fn as_operator(&self) -> Result<OperatorDesk<'_>, ConsoleError> {
        Ok(OperatorDesk {
            on: self,
            permit: self.permit()?,
        })
    }

    /// The owner's handle, or a refusal naming the role needed.
    pub fn as_owner(&self) -> Result<OwnerDesk<'_>, ConsoleError> {
        Ok(OwnerDesk {
            on: self,
            permit: self.permit()?,
        })
    }
}

impl Console {
    /// The console owner's handle for `person`, or a refusal.
    pub fn as_console_owner<'a>(
        &'a self,
        person: &'a Person,
    ) -> Result<ConsoleOwnerDesk<'a>, ConsoleError> {
        if person.console_owner {
            Ok(ConsoleOwnerDesk {
                console: self,
                person,
            })
        } else {
            Err(ConsoleError::forbidden(
                "Only a console owner can see and create teams, give an ownerless team an \
                 owner or make password-reset links.",
            ))
        }
    }
}

impl<'a> OperatorDesk<'a> {
    /// An operator may do all a viewer may.
    pub fn viewer(&self) -> ViewerDesk<'a> {
        ViewerDesk {
            on: self.on,
            permit: self.permit.lesser(),
        }
    }
}

impl<'a> OwnerDesk<'a> {
    /// An owner may do all an operator may.
    pub fn operator(&self) -> OperatorDesk<'a> {
        OperatorDesk {
            on: self.on,
            permit: self.permit.lesser(),
        }
    }

    /// An owner may do all a viewer may.
    pub fn viewer(&self) -> ViewerDesk<'a> {
        self.operator().viewer()
    }
}

/// A handle reads and writes through its team's service (the helpers every handle shares);
/// the team's own methods are on the handles alone.
macro_rules! desk_on_team {
    ($($desk:ident),*) => {$(
        impl std::ops::Deref for $desk<'_> {
            type Target = TeamConsole;

            fn deref(&self) -> &TeamConsole {
                self.on
            }
        }
    )*};
}
desk_on_team!(ViewerDesk, OperatorDesk, OwnerDesk);

/// The server functions: each takes the handle it needs, or is refused with the role needed.
#[async_trait]
impl ConsoleBackend for TeamConsole {
    async fn storage_status(&self) -> Result<StorageStatus, ConsoleError> {
        self.as_viewer()?.storage_status().await
    }

    async fn connection(&self) -> Result<ConnectionView, ConsoleError> {
        self.as_viewer()?.connection().await
    }

    async fn save_connection(
        &self,
        form: ConnectionForm,
    ) -> Result<(ConnectionView, Diagnosis), ConsoleError> {
        self.as_owner()?.save_connection(form).await
    }

    async fn forget_token(&self) -> Result<ConnectionView, ConsoleError> {
        self.as_owner()?.forget_token().await
    }

    async fn check_connection(&self) -> Result<Diagnosis, ConsoleError> {
        self.as_operator()?.check_connection().await
    }

    async fn preview_file(
        &self,
        file_name: String,
        bytes: Vec<u8>,
        column: Option<usize>,
        action: Action,
        demote_privileged: bool,
    ) -> Result<PreviewSummary, ConsoleError> {
        self.as_operator()?
            .preview_file(file_name, bytes, column, action, demote_privileged)
            .await
    }

    async fn deactivated_users(&self) -> Result<Vec<SiteUser>, ConsoleError> {
        self.as_operator()?.deactivated_users().await
    }

    async fn deactivated_since(&self) -> Result<app::team::DeactivatedSince, ConsoleError> {
        self.as_operator()?.viewer().deactivated_since().await
    }

    async fn preview_picked(
        &self,
        account_ids: Vec<String>,
        action: Action,
        demote_privileged: bool,
    ) -> Result<PreviewSummary, ConsoleError> {
        self.as_operator()?
            .preview_picked(account_ids, action, demote_privileged)
            .await
    }

    async fn revise_preview(
        &self,
        preview_id: PreviewId,
        action: Action,
        demote_privileged: bool,
        column: Option<usize>,
    ) -> Result<PreviewSummary, ConsoleError> {
        self.as_operator()?
            .revise_preview(preview_id, action, demote_privileged, column)
            .await
    }

    async fn preview(&self, preview_id: PreviewId) -> Result<PreviewSummary, ConsoleError> {
        self.as_viewer()?.preview(preview_id).await
    }

    async fn preview_rows(
        &self,
        preview_id: PreviewId,
        outcome: Option<PreviewOutcome>,
        offset: usize,
        limit: usize,
    ) -> Result<PreviewRowsPage, ConsoleError> {
        self.as_viewer()?
            .preview_rows(preview_id, outcome, offset, limit)
            .await
    }

    async fn start_job(
        &self,
        preview_id: PreviewId,
        typed: String,
    ) -> Result<JobView, ConsoleError> {
        self.as_operator()?.start_job(preview_id, typed).await
    }

    async fn request_approval(
        &self,
        preview_id: PreviewId,
        typed: String,
    ) -> Result<app::team::ApprovalView, ConsoleError> {
        self.as_operator()?
            .request_approval(preview_id, typed)
            .await
    }

    async fn decline_approval(
        &self,
        preview_id: PreviewId,
        reason: String,
    ) -> Result<app::team::ApprovalView, ConsoleError> {
        self.as_operator()?
            .decline_approval(preview_id, reason)
            .await
    }

    async fn preview_again(&self, preview_id: PreviewId) -> Result<PreviewSummary, ConsoleError> {
        self.as_operator()?.preview_again(preview_id).await
    }

    async fn preview_not_removed(&self, job_id: JobId) -> Result<PreviewSummary, ConsoleError> {
        self.as_operator()?.preview_not_removed(job_id).await
    }

    async fn approval_requests(
        &self,
    ) -> Result<Vec<app::backend::ApprovalRequestView>, ConsoleError> {
        self.as_viewer()?.approval_requests().await
    }

    async fn waiting_for_you(&self) -> Result<app::backend::WaitingForYou, ConsoleError> {
        self.as_viewer()?.waiting_for_you().await
    }

    async fn job(&self, job_id: JobId) -> Result<JobView, ConsoleError> {
        self.as_viewer()?.job(job_id).await
    }

    async fn jobs(&self) -> Result<Vec<JobView>, ConsoleError> {
        self.as_viewer()?.jobs().await
    }

    async fn control_job(
        &self,
        job_id: JobId,
        command: JobCommand,
    ) -> Result<JobView, ConsoleError> {
        self.as_operator()?.control_job(job_id, command).await
    }

    async fn job_events(
        &self,
        job_id: JobId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEventView>, ConsoleError> {
        self.as_viewer()?.job_events(job_id, after_seq, limit).await
    }

    async fn job_results_page(
        &self,
        job_id: JobId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<JobResultsPage, ConsoleError> {
        self.as_viewer()?
            .job_results_page(job_id, before_seq, limit)
            .await
    }

    async fn audit_page(
        &self,
        filter: app::audit::AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<app::audit::AuditPage, ConsoleError> {
        self.as_viewer()?.audit_page(filter, before, limit).await
    }
}
