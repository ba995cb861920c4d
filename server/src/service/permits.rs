//! Typed permissions: a value of one of these proves the request's member has the role it
//! needs in a team. Only [`check`] makes them (the marker field is private to this module),
//! or a greater permit gives a lesser one; each role-typed handle (`desks.rs`) holds one, and
//! the job supervisor's start and control take the operator's.

use app::backend::ConsoleError;
use app::ids::TeamId;
use app::team::Role;
use model::Named;

/// What a kind of permit needs.
pub trait Need {
    const ROLE: Role;
    /// The words of a refusal, e.g. "start runs".
    const TO: &'static str;
}

/// May read history, progress, reports and the audit trail.
pub struct View;
/// May make previews and start, pause, resume and cancel runs.
pub struct Operate;
/// May manage members, invitations and the site connection.
pub struct Own;

impl Need for View {
    const ROLE: Role = Role::Viewer;
    const TO: &'static str = "see this team's work";
}
impl Need for Operate {
    const ROLE: Role = Role::Operator;
    const TO: &'static str = "make previews or start, pause and cancel runs";
}
impl Need for Own {
    const ROLE: Role = Role::Owner;
    const TO: &'static str = "manage members, invitations or the site connection";
}

/// Proof that the request may do `N`'s things in `team`.
pub struct Permit<N: Need> {
    pub team: TeamId,
    _need: std::marker::PhantomData<N>,
}

impl Permit<Operate> {
    /// An operator may do all a viewer may.
    pub(super) fn lesser(&self) -> Permit<View> {
        Permit {
            team: self.team,
            _need: std::marker::PhantomData,
        }
    }
}

impl Permit<Own> {
    /// An owner may do all an operator may.
    pub(super) fn lesser(&self) -> Permit<Operate> {
        Permit {
            team: self.team,
            _need: std::marker::PhantomData,
        }
    }
}

/// The permit for `N` in `team` for someone with `role`.
pub(super) fn check<N: Need>(
    role: Role,
    team: TeamId,
    team_name: &str,
) -> Result<Permit<N>, ConsoleError> {
    if role >= N::ROLE {
        Ok(Permit {
            team,
            _need: std::marker::PhantomData,
        })
    } else {
        Err(ConsoleError::forbidden(format!(
            "You are {} in {team_name}: only {}s may {}. Ask an owner of the team if you \
             need to.",
            article(role),
            N::ROLE.key(),
            N::TO
        )))
    }
}

fn article(role: Role) -> String {
    match role {
        Role::Operator | Role::Owner => format!("an {}", role.key()),
        Role::Viewer => format!("a {}", role.key()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permit<N: Need>(role: Role) -> Result<Permit<N>, ConsoleError> {
        check(role, TeamId::new(3), "Support")
    }

    #[test]
    fn permits_follow_the_role_order() {
        assert!(permit::<View>(Role::Viewer).is_ok());
        let refused = permit::<Operate>(Role::Viewer).err().unwrap();
        assert_eq!(refused.kind, app::backend::ConsoleErrorKind::Forbidden);
        assert!(
            refused.message.contains("You are a viewer in Support"),
            "{}",
            refused.message
        );
        assert!(permit::<Own>(Role::Viewer).is_err());
        assert!(permit::<Operate>(Role::Operator).is_ok());
        assert!(permit::<Own>(Role::Operator).is_err());
        let owner = permit::<Own>(Role::Owner).unwrap();
        assert_eq!(owner.team, TeamId::new(3));
        assert!(permit::<View>(Role::Owner).is_ok());
        // A greater permit gives the lesser ones, for the same team.
        assert_eq!(owner.lesser().lesser().team, TeamId::new(3));
    }
}
