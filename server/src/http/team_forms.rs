//! The Team and Teams pages' forms, as plain HTML form posts: an owner's members, invitations
//! and settings (through the owner's handle), a console owner's teams and reset links
//! (through the console owner's handle). Each redirects back as `accounts.rs` describes.

use super::accounts::{base_url, done_or_notice, keep_link, notice};
use super::caller::{for_member, for_person, GatedRoutes, SignedInVisitor};
use super::{AppState, Caller};
use app::backend::ConsoleError;
use app::ids::TeamId;
use app::team::{
    member_set_words, removed_words, settings_words, ApprovalPolicy, Role, TeamSettings,
};
use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use model::Named;
use serde::Deserialize;
use tower_sessions::Session;

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

#[derive(Deserialize, Default)]
#[serde(default)]
struct InviteForm {
    email: String,
    role: String,
}

/// `POST /team/invitations`: an owner makes a one-time invitation link.
async fn invite(
    State(state): State<AppState>,
    session: Session,
    caller: Caller,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> Response {
    let answer = async {
        let team = state.service.for_member(&caller.member);
        let owner = team.as_owner()?;
        let role = Role::from_key(&form.role)
            .ok_or_else(|| ConsoleError::new("Choose the role the invitation gives."))?;
        owner
            .invite(&form.email, role, &base_url(&state, &headers))
            .await
    }
    .await;
    match answer {
        Ok(link) => keep_link(&session, link, "/team").await,
        Err(e) => notice(&session, "/team", &e).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RevokeForm {
    id: String,
}

/// `POST /team/invitations/revoke`: an owner revokes an open invitation.
async fn revoke_invitation(
    State(state): State<AppState>,
    session: Session,
    caller: Caller,
    Form(form): Form<RevokeForm>,
) -> Response {
    let answer = async {
        let team = state.service.for_member(&caller.member);
        team.as_owner()?.revoke_invitation(&form.id).await
    }
    .await;
    done_or_notice(&session, "/team", answer, || {
        "The invitation was revoked: its link no longer opens.".to_string()
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MemberForm {
    email: String,
    role: String,
}

/// `POST /team/members`: an owner adds a member by email or changes a role.
async fn set_member(
    State(state): State<AppState>,
    session: Session,
    caller: Caller,
    Form(form): Form<MemberForm>,
) -> Response {
    let role = Role::from_key(&form.role);
    let answer = async {
        let team = state.service.for_member(&caller.member);
        let owner = team.as_owner()?;
        let role =
            role.ok_or_else(|| ConsoleError::new("Choose a role: owner, operator or viewer."))?;
        owner.set_member(&form.email, role).await
    }
    .await;
    done_or_notice(&session, "/team", answer, || {
        let role = role.unwrap_or(Role::Viewer);
        member_set_words(
            &form.email.trim().to_lowercase(),
            role,
            &caller.member.team_name,
        )
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
async fn remove_member(
    State(state): State<AppState>,
    session: Session,
    caller: Caller,
    Form(form): Form<RemoveForm>,
) -> Response {
    let email = form.email.trim().to_lowercase();
    let yourself = email == caller.member.person.email.trim().to_lowercase();
    let team = caller.member.team_name.clone();
    // A role that may not remove anyone is refused first, confirmed or not.
    let console = state.service.for_member(&caller.member);
    let owner = match console.as_owner() {
        Ok(owner) => owner,
        Err(e) => return notice(&session, "/team", &e).await,
    };
    if form.confirm.as_deref() != Some("yes") {
        let back = format!(
            "/team?remove={}#confirm-remove",
            url::form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
        );
        let ask = ConsoleError::new(format!(
            "Nobody was removed: tick the box to confirm that you want to remove {email}."
        ));
        return notice(&session, &back, &ask).await;
    }
    let answer = owner.remove_member(&email).await;
    let back = if yourself && answer.is_ok() {
        "/account"
    } else {
        "/team"
    };
    done_or_notice(&session, back, answer, || {
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
}

/// `POST /team/settings`: an owner changes when runs need a second operator.
async fn save_settings(
    State(state): State<AppState>,
    session: Session,
    caller: Caller,
    Form(form): Form<SettingsForm>,
) -> Response {
    let answer = async {
        let team = state.service.for_member(&caller.member);
        let owner = team.as_owner()?;
        let approval = ApprovalPolicy::from_key(&form.approval)
            .ok_or_else(|| ConsoleError::new("Choose when runs need a second operator."))?;
        let settings = TeamSettings {
            approval,
            approve_deactivations: form.approve_deactivations.is_some(),
        };
        owner.save_settings(settings).await.map(|()| settings)
    }
    .await;
    let (answer, words) = match answer {
        Ok(settings) => (Ok(()), settings_words(settings)),
        Err(e) => (Err(e), String::new()),
    };
    done_or_notice(&session, "/team", answer, || words).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewTeamForm {
    name: String,
}

/// `POST /teams`: a console owner creates a team (and is its first owner).
async fn create_team(
    State(state): State<AppState>,
    session: Session,
    signed_in: SignedInVisitor,
    Form(form): Form<NewTeamForm>,
) -> Response {
    let answer = match state.service.as_console_owner(&signed_in.person) {
        Ok(console_owner) => console_owner.create_team(&form.name).await,
        Err(e) => Err(e),
    };
    done_or_notice(&session, "/teams", answer.map(|_| ()), || {
        format!(
            "The team {} was created, with you as its owner.",
            form.name.trim()
        )
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetLinkForm {
    email: String,
}

/// `POST /teams/reset-links`: a console owner makes a password-reset link for someone.
async fn reset_link(
    State(state): State<AppState>,
    session: Session,
    SignedInVisitor { person, .. }: SignedInVisitor,
    headers: HeaderMap,
    Form(form): Form<ResetLinkForm>,
) -> Response {
    let answer = match state.service.as_console_owner(&person) {
        Ok(console_owner) => {
            console_owner
                .reset_link(&form.email, &base_url(&state, &headers))
                .await
        }
        Err(e) => Err(e),
    };
    match answer {
        Ok(link) => keep_link(&session, link, "/teams").await,
        Err(e) => notice(&session, "/teams", &e).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OwnerForm {
    team: i64,
    email: String,
}

/// `POST /teams/owner`: a console owner gives a team that has no owner an owner.
async fn give_owner(
    State(state): State<AppState>,
    session: Session,
    SignedInVisitor { person, .. }: SignedInVisitor,
    Form(form): Form<OwnerForm>,
) -> Response {
    let answer = match state.service.as_console_owner(&person) {
        Ok(console_owner) => {
            console_owner
                .give_owner(TeamId::new(form.team), &form.email)
                .await
        }
        Err(e) => Err(e),
    };
    done_or_notice(&session, "/teams", answer, || {
        format!(
            "{} is now an owner of that team.",
            form.email.trim().to_lowercase()
        )
    })
    .await
}
