//! The Team and Teams pages' forms, as plain HTML form posts: an owner's members, invitations
//! and settings (through the owner's handle), a console owner's teams and reset links
//! (through the console owner's handle). Each redirects back as `accounts.rs` describes.

use super::accounts::{base_url, done_or_notice, link_or_notice, notice, FormPost};
use super::caller::{for_member, for_person, GatedRoutes, SignedInVisitor};
use super::Caller;
use crate::service::ConsoleOwnerDesk;
use app::backend::ConsoleError;
use app::ids::TeamId;
use app::team::{
    member_set_words, removed_words, settings_words, ApprovalPolicy, Role, TeamSettings,
};
use axum::extract::Form;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use model::Named;
use serde::Deserialize;

pub fn routes() -> GatedRoutes {
    GatedRoutes::new()
        .route("/team/invitations", for_member(post(invite)))
        .route(
            "/team/invitations/revoke",
            for_member(post(revoke_invitation)),
        )
        .route("/team/members", for_member(post(set_member)))
        .route("/team/members/remove", for_member(post(remove_member)))
        .route("/team/settings", for_member(post(save_settings)))
        // A console owner's forms: anyone signed in reaches them; the console owner's handle
        // refuses everyone else.
        .route("/teams", for_person(post(create_team)))
        .route("/teams/reset-links", for_person(post(reset_link)))
        .route("/teams/owner", for_person(post(give_owner)))
}

type TeamPost = FormPost<Caller>;
type TeamsPost = FormPost<SignedInVisitor>;

impl TeamsPost {
    fn console_owner(&self) -> Result<ConsoleOwnerDesk<'_>, ConsoleError> {
        self.state.service.as_console_owner(&self.who.person)
    }
}

/// An email and a role: an invitation's, or a member's.
#[derive(Deserialize, Default)]
#[serde(default)]
struct MemberForm {
    email: String,
    role: String,
}

/// `POST /team/invitations`: an owner makes a one-time invitation link.
async fn invite(post: TeamPost, headers: HeaderMap, Form(form): Form<MemberForm>) -> Response {
    let team = post.team();
    let answer = async {
        let owner = team.as_owner()?;
        let role = Role::from_key(&form.role)
            .ok_or_else(|| ConsoleError::new("Choose the role the invitation gives."))?;
        let base = base_url(&post.state, &headers);
        owner.invite(&form.email, role, &base).await
    }
    .await;
    link_or_notice(&post.session, "/team", answer).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RevokeForm {
    id: String,
}

/// `POST /team/invitations/revoke`: an owner revokes an open invitation.
async fn revoke_invitation(post: TeamPost, Form(form): Form<RevokeForm>) -> Response {
    let team = post.team();
    let answer = async { team.as_owner()?.revoke_invitation(&form.id).await }.await;
    done_or_notice(&post.session, "/team", answer, || {
        "The invitation was revoked: its link no longer opens.".to_string()
    })
    .await
}

/// `POST /team/members`: an owner adds a member by email or changes a role.
async fn set_member(post: TeamPost, Form(form): Form<MemberForm>) -> Response {
    let role = Role::from_key(&form.role);
    let team = post.team();
    let answer = async {
        let owner = team.as_owner()?;
        let role =
            role.ok_or_else(|| ConsoleError::new("Choose a role: owner, operator or viewer."))?;
        owner.set_member(&form.email, role).await
    }
    .await;
    let email = form.email.trim().to_lowercase();
    let team_name = &post.who.member.team_name;
    done_or_notice(&post.session, "/team", answer, || {
        member_set_words(&email, role.unwrap_or(Role::Viewer), team_name)
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RemoveForm {
    email: String,
    /// The Team page's confirmation box: present ("yes") only when ticked.
    confirm: Option<String>,
}

/// `POST /team/members/remove`: only with the confirmation box ticked (the Team page asks
/// first, naming the person and what they lose). Removing yourself lands on the Account page,
/// since the Team page is not yours any more.
async fn remove_member(post: TeamPost, Form(form): Form<RemoveForm>) -> Response {
    let session = &post.session;
    let email = form.email.trim().to_lowercase();
    let yourself = email == post.who.member.person.email.trim().to_lowercase();
    let team = post.who.member.team_name.clone();
    // A role that may not remove anyone is refused first, confirmed or not.
    let console = post.team();
    let owner = match console.as_owner() {
        Ok(owner) => owner,
        Err(e) => return notice(session, "/team", &e).await,
    };
    if form.confirm.as_deref() != Some("yes") {
        let back = format!(
            "/team?remove={}#confirm-remove",
            url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
        );
        let ask = ConsoleError::new(format!(
            "Nobody was removed: tick the box to confirm that you want to remove {email}."
        ));
        return notice(session, &back, &ask).await;
    }
    let answer = owner.remove_member(&email).await;
    let back = if yourself && answer.is_ok() {
        "/account"
    } else {
        "/team"
    };
    done_or_notice(session, back, answer, || {
        removed_words(&email, &team, yourself)
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SettingsForm {
    approval: String,
    /// A checkbox: present ("on") when ticked.
    approve_deactivations: Option<String>,
    /// "Days before deletion" (absent from older forms: the default).
    days_before_deletion: Option<String>,
    ask_again_at_date: Option<String>,
}

/// `POST /team/settings`: an owner changes when runs need a second operator.
async fn save_settings(post: TeamPost, Form(form): Form<SettingsForm>) -> Response {
    let team = post.team();
    let answer = async {
        let owner = team.as_owner()?;
        let approval = ApprovalPolicy::from_key(&form.approval)
            .ok_or_else(|| ConsoleError::new("Choose when runs need a second operator."))?;
        let days = match form.days_before_deletion.as_deref().map(str::trim) {
            None | Some("") => app::team::DEFAULT_DELETION_DAYS,
            Some(text) => text
                .parse()
                .ok()
                .filter(|d| app::team::DELETION_DAYS.contains(d))
                .ok_or_else(|| ConsoleError::new("Days before deletion: a number from 1 to 90."))?,
        };
        let settings = TeamSettings {
            approval,
            approve_deactivations: form.approve_deactivations.is_some(),
            days_before_deletion: days,
            ask_again_at_date: form.ask_again_at_date.is_some(),
        };
        owner.save_settings(settings).await.map(|()| settings)
    }
    .await;
    let (answer, words) = match answer {
        Ok(settings) => (Ok(()), settings_words(settings)),
        Err(e) => (Err(e), String::new()),
    };
    done_or_notice(&post.session, "/team", answer, || words).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewTeamForm {
    name: String,
}

/// `POST /teams`: a console owner creates a team (and is its first owner).
async fn create_team(post: TeamsPost, Form(form): Form<NewTeamForm>) -> Response {
    let answer = async { post.console_owner()?.create_team(&form.name).await }.await;
    done_or_notice(&post.session, "/teams", answer.map(|_| ()), || {
        format!(
            "The team {} was created, with you as its owner.",
            form.name.trim()
        )
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OwnerForm {
    team: i64,
    email: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetLinkForm {
    email: String,
}

/// `POST /teams/reset-links`: a console owner makes a password-reset link for someone.
async fn reset_link(
    post: TeamsPost,
    headers: HeaderMap,
    Form(form): Form<ResetLinkForm>,
) -> Response {
    let base = base_url(&post.state, &headers);
    let answer = async { post.console_owner()?.reset_link(&form.email, &base).await }.await;
    link_or_notice(&post.session, "/teams", answer).await
}

/// `POST /teams/owner`: a console owner gives a team that has no owner an owner.
async fn give_owner(post: TeamsPost, Form(form): Form<OwnerForm>) -> Response {
    let team = TeamId::new(form.team);
    let answer = async { post.console_owner()?.give_owner(team, &form.email).await }.await;
    let email = form.email.trim().to_lowercase();
    done_or_notice(&post.session, "/teams", answer, || {
        format!("{email} is now an owner of that team.")
    })
    .await
}
