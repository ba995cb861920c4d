//! The stored enums that only storage and its callers name (what a one-time link is for, what
//! an approver decided): in a module of their own so that every storage area can bound its
//! statements on them without the areas importing each other.

use serde::{Deserialize, Serialize};

/// What a one-time link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum LinkPurpose {
    /// The first owner's account, printed in the log while the console has no account.
    Setup,
    /// Joining a team with a role.
    Invitation,
    /// Choosing a new password (made by a console owner).
    Reset,
    /// Confirming a local account's email address (mailed to it; docs/accounts.md).
    ConfirmEmail,
}

/// What a second operator decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Declined,
}
