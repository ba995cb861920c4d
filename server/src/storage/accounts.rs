//! People, teams, memberships, one-time links and failed sign-ins: the records sign-in and
//! the team pages need ([`AccountStorage`], part of every [`super::Storage`]), written once
//! for both databases.

use super::column::{Maybe, Stamp};
use super::store::{Dialect, Store};
use super::{Result, StorageError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::hidden::Hidden;
use model::ids::{AccountId, TeamId};
use model::team::Role;

mod sql;

/// A person who can sign in. `Debug` hides the password hash.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRecord {
    pub id: AccountId,
    /// Lower-cased.
    pub email: String,
    pub name: String,
    /// argon2id, PHC string; None for a person who signs in through single sign-on only.
    #[sqlx(try_from = "Maybe<String>")]
    pub password_hash: Option<Hidden<String>>,
    pub console_owner: bool,
    /// The account has proven it owns its email (single sign-on with a verified email): only
    /// then does it take up memberships granted to the email (docs/accounts.md).
    pub email_proven: bool,
    /// Sessions made before the epoch last changed are no longer valid.
    pub session_epoch: i64,
    #[sqlx(try_from = "Stamp")]
    pub created_at: DateTime<Utc>,
}

/// An account about to be created.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub email: String,
    pub name: String,
    pub password_hash: Option<Hidden<String>>,
    pub console_owner: bool,
    pub email_proven: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TeamRecord {
    pub id: TeamId,
    pub name: String,
    #[sqlx(try_from = "Stamp")]
    pub created_at: DateTime<Utc>,
}

/// One member of a team (by email), with the name of their account once they have one.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberRecord {
    pub email: String,
    pub role: Role,
    pub added_by: String,
    #[sqlx(try_from = "Stamp")]
    pub added_at: DateTime<Utc>,
    /// The account's name, once the membership belongs to an account.
    pub name: Option<String>,
    /// The account the membership belongs to; None while it waits, granted by email, for
    /// someone who proves that email.
    #[sqlx(rename = "account_id")]
    pub account: Option<AccountId>,
}

/// Who accepts an invitation: an account that exists, or one made in the same transaction.
#[derive(Clone, Copy, Debug)]
pub enum Joiner<'a> {
    Existing(&'a AccountRecord),
    New(&'a NewAccount),
}

impl Joiner<'_> {
    fn email(&self) -> &str {
        match self {
            Joiner::Existing(a) => &a.email,
            Joiner::New(a) => &a.email,
        }
    }
}

/// What a change of membership did: the role before (None: a new member).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberChange {
    pub before: Option<Role>,
}

pub use super::kinds::LinkPurpose;

/// A one-time link as stored: only the hash of its secret.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkRecord {
    pub secret_hash: String,
    pub purpose: LinkPurpose,
    pub team_id: Option<TeamId>,
    pub role: Option<Role>,
    pub email: Option<String>,
    pub created_by: String,
    #[sqlx(try_from = "Stamp")]
    pub created_at: DateTime<Utc>,
    #[sqlx(try_from = "Stamp")]
    pub expires_at: DateTime<Utc>,
}

/// The account, team and sign-in records. Emails given to these methods are lower-cased by
/// the caller (the service), so they compare exactly here.
#[async_trait]
pub trait AccountStorage: Send + Sync {
    async fn account_count(&self) -> Result<u64>;
    /// Creates the account; [`StorageError::EmailTaken`] if one has the email already.
    async fn create_account(&self, account: &NewAccount) -> Result<AccountRecord>;
    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>>;
    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>>;
    /// Replaces the password hash and ends every session of the account (raises its epoch).
    async fn set_password(&self, id: AccountId, hash: &Hidden<String>) -> Result<()>;
    /// Ends every session of the account (raises its epoch); the new epoch.
    async fn end_sessions(&self, id: AccountId) -> Result<i64>;
    /// Notes that the account proved its email, and gives it every membership that was
    /// granted to that email and waits for its owner; how many it took up.
    async fn prove_email(&self, id: AccountId) -> Result<u64>;

    /// The account a single sign-on identity (issuer + subject) belongs to.
    async fn sso_account(&self, issuer: &str, subject: &str) -> Result<Option<AccountId>>;
    /// Ties a single sign-on identity to an account; [`StorageError::IdentityTaken`] if it
    /// belongs to an account already.
    async fn link_sso(&self, issuer: &str, subject: &str, account: AccountId) -> Result<()>;
    /// True if the account has a single sign-on identity with this issuer.
    async fn has_sso(&self, account: AccountId, issuer: &str) -> Result<bool>;

    async fn create_team(&self, name: &str) -> Result<TeamRecord>;
    async fn teams(&self) -> Result<Vec<TeamRecord>>;
    async fn team(&self, id: TeamId) -> Result<Option<TeamRecord>>;
    /// The teams the account belongs to, with the role in each, by team name (memberships
    /// still waiting for someone to prove the email are not anyone's yet).
    async fn memberships(&self, account: AccountId) -> Result<Vec<(TeamRecord, Role)>>;
    /// Memberships granted to `email` that wait for someone to prove it.
    async fn waiting_memberships(&self, email: &str) -> Result<u64>;
    /// The team's members, owners first, then by email.
    async fn members(&self, team_id: TeamId) -> Result<Vec<MemberRecord>>;
    /// Adds the member, or changes their role, in one transaction that keeps the team an owner:
    /// [`StorageError::LastOwner`] if this would demote its last owner. `account`: the account
    /// it is granted to, or None for a grant to whoever proves the email. A demoted owner's
    /// open invitations are voided in the same transaction.
    async fn set_member(
        &self,
        team_id: TeamId,
        email: &str,
        role: Role,
        by: &str,
        account: Option<AccountId>,
    ) -> Result<MemberChange>;
    /// Removes the member under the same rule as [`AccountStorage::set_member`]; their role,
    /// or None if they were not a member.
    async fn remove_member(&self, team_id: TeamId, email: &str) -> Result<Option<Role>>;

    async fn save_link(&self, link: &LinkRecord) -> Result<()>;
    /// The link, if it exists for `purpose`, is unused, not revoked and has not expired at
    /// `now`; an invitation also only while its maker is still an owner of its team.
    async fn open_link(
        &self,
        secret_hash: &str,
        purpose: LinkPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<LinkRecord>>;
    /// As [`AccountStorage::open_link`], and marks it used in the same statement: true for
    /// exactly one caller, however many send it at once.
    async fn use_link(
        &self,
        secret_hash: &str,
        purpose: LinkPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<LinkRecord>>;
    /// Uses an invitation for `joiner` (whose email the invitation must name), making the
    /// account if it is new, and makes the account a member, all in one transaction: the
    /// account, the team and the role it now has there (never lower than a role it had), or
    /// None if the invitation does not open (then nothing was made).
    async fn accept_invitation(
        &self,
        secret_hash: &str,
        joiner: Joiner<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<(AccountRecord, TeamId, Role, LinkRecord)>>;
    /// The team's invitations that still open, soonest to expire first.
    async fn open_invitations(
        &self,
        team_id: TeamId,
        now: DateTime<Utc>,
    ) -> Result<Vec<LinkRecord>>;
    /// Revokes one of the team's open invitations; false if there was none to revoke.
    async fn revoke_invitation(
        &self,
        team_id: TeamId,
        secret_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Reserves a sign-in attempt before the password is checked: in one step per subject,
    /// counts the subjects' failures since `since` and notes this attempt as a failure of
    /// each (under `attempt`, so a success can take it back). The counts are from before this
    /// attempt; failures older than `since` are forgotten.
    async fn reserve_sign_in(
        &self,
        subjects: &[String],
        attempt: &str,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<Vec<u32>>;
    /// Takes back a reserved attempt (it succeeded).
    async fn release_sign_in(&self, attempt: &str) -> Result<()>;
    /// Forgets failures older than `before`, and the subjects with no failure left (each
    /// subject's row only serialises its attempts: without a failure it holds nothing); how
    /// many subjects were forgotten.
    async fn forget_sign_in_subjects(&self, before: DateTime<Utc>) -> Result<u64>;
    /// Failed sign-ins of `subject` since `since`.
    async fn sign_in_failures(&self, subject: &str, since: DateTime<Utc>) -> Result<u32>;
    async fn clear_sign_in_failures(&self, subject: &str) -> Result<()>;
}

/// `result`, with a clash on a unique column (an email, an identity) reported as `taken`.
fn taken_as<T>(result: std::result::Result<T, sqlx::Error>, taken: StorageError) -> Result<T> {
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(taken),
        result => Ok(result?),
    }
}

const ACCOUNT_COLUMNS: &str =
    "id, email, name, password_hash, console_owner, email_proven, session_epoch, created_at";

/// The steps of the account statements that run inside a caller's transaction.
impl<DB: Dialect> Store<DB> {
    /// Inserts `account`; [`StorageError::EmailTaken`] if one has the email already.
    async fn insert_account(
        conn: &mut DB::Connection,
        account: &NewAccount,
        at: DateTime<Utc>,
    ) -> Result<AccountRecord> {
        let row: std::result::Result<AccountRecord, sqlx::Error> = sqlx::query_as(&format!(
            "INSERT INTO accounts (email, name, password_hash, console_owner, \
             email_proven, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING {ACCOUNT_COLUMNS}"
        ))
        .bind(&account.email)
        .bind(&account.name)
        .bind(account.password_hash.as_ref().map(|h| h.expose().clone()))
        .bind(account.console_owner)
        .bind(account.email_proven)
        .bind(Stamp(at))
        .fetch_one(DB::on(&mut *conn))
        .await;
        taken_as(row, StorageError::EmailTaken)
    }

    /// Locks the team's row for the rest of the transaction (every change of a team's
    /// owners and every use of its invitations takes it first, so they happen one
    /// after another) and reads `email`'s role there.
    async fn lock_team_and_read_role(
        conn: &mut DB::Connection,
        team_id: TeamId,
        email: &str,
    ) -> Result<Option<Role>> {
        sqlx::query("UPDATE teams SET name = name WHERE id = $1")
            .bind(team_id)
            .execute(DB::on(&mut *conn))
            .await?;
        Ok(
            sqlx::query_scalar("SELECT role FROM team_members WHERE team_id = $1 AND email = $2")
                .bind(team_id)
                .bind(email)
                .fetch_optional(DB::on(&mut *conn))
                .await?,
        )
    }

    /// [`StorageError::LastOwner`] unless the team has an owner besides `email`.
    async fn refuse_last_owner(
        conn: &mut DB::Connection,
        team_id: TeamId,
        email: &str,
    ) -> Result<()> {
        let (others,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM team_members WHERE team_id = $1 AND role = 'owner' \
             AND email <> $2",
        )
        .bind(team_id)
        .bind(email)
        .fetch_one(DB::on(&mut *conn))
        .await?;
        if others == 0 {
            return Err(StorageError::LastOwner);
        }
        Ok(())
    }

    /// Voids the open invitations `email` made to the team (they stop being an owner).
    async fn void_invitations_of(
        conn: &mut DB::Connection,
        team_id: TeamId,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE account_links SET revoked_at = $1 WHERE purpose = 'invitation' \
             AND team_id = $2 AND created_by = $3 AND used_at IS NULL \
             AND revoked_at IS NULL",
        )
        .bind(Stamp(now))
        .bind(team_id)
        .bind(email)
        .execute(DB::on(&mut *conn))
        .await?;
        Ok(())
    }
}
