//! People, teams, memberships, one-time links and failed sign-ins: the records sign-in and
//! the team pages need ([`AccountStorage`], part of every [`super::Storage`]), and their
//! SQLite implementation.

use super::rows::{enum_from_name, parse_stamp, stamp};
use super::{Result, StorageError};
use app::hidden::Hidden;
use app::ids::{AccountId, TeamId};
use app::team::Role;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A person who can sign in. `Debug` hides the password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: AccountId,
    /// Lower-cased.
    pub email: String,
    pub name: String,
    /// argon2id, PHC string; None for a person who signs in through single sign-on only.
    pub password_hash: Option<Hidden<String>>,
    pub console_owner: bool,
    /// Sessions made before the epoch last changed are no longer valid.
    pub session_epoch: i64,
    pub created_at: DateTime<Utc>,
}

/// An account about to be created.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub email: String,
    pub name: String,
    pub password_hash: Option<Hidden<String>>,
    pub console_owner: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamRecord {
    pub id: TeamId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// One member of a team (by email), with the name of their account once they have one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub email: String,
    pub role: Role,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
    pub name: Option<String>,
}

/// What a one-time link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkPurpose {
    /// The first owner's account, printed in the log while the console has no account.
    Setup,
    /// Joining a team with a role.
    Invitation,
    /// Choosing a new password (made by a console owner).
    Reset,
}

/// A one-time link as stored: only the hash of its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRecord {
    pub secret_hash: String,
    pub purpose: LinkPurpose,
    pub team_id: Option<TeamId>,
    pub role: Option<Role>,
    pub email: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
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

    async fn create_team(&self, name: &str) -> Result<TeamRecord>;
    async fn teams(&self) -> Result<Vec<TeamRecord>>;
    async fn team(&self, id: TeamId) -> Result<Option<TeamRecord>>;
    /// The teams `email` belongs to, with the role in each, by team name.
    async fn memberships(&self, email: &str) -> Result<Vec<(TeamRecord, Role)>>;
    /// The team's members, owners first, then by email.
    async fn members(&self, team_id: TeamId) -> Result<Vec<MemberRecord>>;
    /// Adds the member, or changes their role.
    async fn set_member(&self, team_id: TeamId, email: &str, role: Role, by: &str) -> Result<()>;
    /// True if they were a member.
    async fn remove_member(&self, team_id: TeamId, email: &str) -> Result<bool>;

    async fn save_link(&self, link: &LinkRecord) -> Result<()>;
    /// The link, if it exists for `purpose`, is unused and has not expired at `now`.
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

    /// Notes one failed sign-in for each subject (`account:…`, `address:…`), and forgets
    /// failures older than `forget_before`.
    async fn add_sign_in_failure(
        &self,
        subjects: &[String],
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<()>;
    /// Failed sign-ins of `subject` since `since`.
    async fn sign_in_failures(&self, subject: &str, since: DateTime<Utc>) -> Result<u32>;
    async fn clear_sign_in_failures(&self, subject: &str) -> Result<()>;
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: AccountId,
    email: String,
    name: String,
    password_hash: Option<String>,
    console_owner: bool,
    session_epoch: i64,
    created_at: String,
}

impl TryFrom<AccountRow> for AccountRecord {
    type Error = StorageError;

    fn try_from(r: AccountRow) -> Result<AccountRecord> {
        Ok(AccountRecord {
            id: r.id,
            email: r.email,
            name: r.name,
            password_hash: r.password_hash.map(Hidden::new),
            console_owner: r.console_owner,
            session_epoch: r.session_epoch,
            created_at: parse_stamp(&r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TeamRow {
    id: TeamId,
    name: String,
    created_at: String,
}

impl TryFrom<TeamRow> for TeamRecord {
    type Error = StorageError;

    fn try_from(r: TeamRow) -> Result<TeamRecord> {
        Ok(TeamRecord {
            id: r.id,
            name: r.name,
            created_at: parse_stamp(&r.created_at).or_else(|_| legacy_stamp(&r.created_at))?,
        })
    }
}

/// The built-in team's row was stamped by SQLite's `strftime` (no fraction digits).
fn legacy_stamp(text: &str) -> Result<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%SZ")
        .map(|t| t.and_utc())
        .map_err(|_| StorageError::Damaged(format!("unreadable time {text:?}")))
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    email: String,
    role: String,
    added_by: String,
    added_at: String,
    name: Option<String>,
}

impl TryFrom<MemberRow> for MemberRecord {
    type Error = StorageError;

    fn try_from(r: MemberRow) -> Result<MemberRecord> {
        Ok(MemberRecord {
            role: enum_from_name("role", &r.role)?,
            email: r.email,
            added_by: r.added_by,
            added_at: parse_stamp(&r.added_at)?,
            name: r.name,
        })
    }
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    secret_hash: String,
    purpose: String,
    team_id: Option<TeamId>,
    role: Option<String>,
    email: Option<String>,
    created_by: String,
    created_at: String,
    expires_at: String,
}

impl TryFrom<LinkRow> for LinkRecord {
    type Error = StorageError;

    fn try_from(r: LinkRow) -> Result<LinkRecord> {
        Ok(LinkRecord {
            purpose: enum_from_name("link purpose", &r.purpose)?,
            role: r
                .role
                .as_deref()
                .map(|role| enum_from_name("role", role))
                .transpose()?,
            secret_hash: r.secret_hash,
            team_id: r.team_id,
            email: r.email,
            created_by: r.created_by,
            created_at: parse_stamp(&r.created_at)?,
            expires_at: parse_stamp(&r.expires_at)?,
        })
    }
}

const ACCOUNT_COLUMNS: &str =
    "id, email, name, password_hash, console_owner, session_epoch, created_at";
const LINK_COLUMNS: &str =
    "secret_hash, purpose, team_id, role, email, created_by, created_at, expires_at";

/// The statements of [`AccountStorage`], written once with `$n` placeholders (both
/// databases take them) and implemented for each storage: `$read` is the pool reads use,
/// `$write` the one writes use (SQLite has one writer connection of its own).
macro_rules! account_queries {
    ($storage:ty, $read:ident, $write:ident) => {
#[async_trait]
        impl AccountStorage for $storage {
    async fn account_count(&self) -> Result<u64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.$read)
            .await?;
        Ok(super::rows::to_u64(n))
    }

    async fn create_account(&self, account: &NewAccount) -> Result<AccountRecord> {
        let row: std::result::Result<AccountRow, sqlx::Error> = sqlx::query_as(&format!(
            "INSERT INTO accounts (email, name, password_hash, console_owner, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {ACCOUNT_COLUMNS}"
        ))
        .bind(&account.email)
        .bind(&account.name)
        .bind(account.password_hash.as_ref().map(|h| h.expose()))
        .bind(account.console_owner)
        .bind(stamp(self.clock.now()))
        .fetch_one(&self.$write)
        .await;
        match row {
            Ok(row) => row.try_into(),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StorageError::EmailTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        let row: Option<AccountRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.$read)
        .await?;
        row.map(AccountRecord::try_from).transpose()
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>> {
        let row: Option<AccountRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.$read)
        .await?;
        row.map(AccountRecord::try_from).transpose()
    }

    async fn set_password(&self, id: AccountId, hash: &Hidden<String>) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET password_hash = $1, session_epoch = session_epoch + 1 \
             WHERE id = $2",
        )
        .bind(hash.expose())
        .bind(id)
        .execute(&self.$write)
        .await?;
        Ok(())
    }

    async fn end_sessions(&self, id: AccountId) -> Result<i64> {
        let (epoch,): (i64,) = sqlx::query_as(
            "UPDATE accounts SET session_epoch = session_epoch + 1 WHERE id = $1 \
             RETURNING session_epoch",
        )
        .bind(id)
        .fetch_one(&self.$write)
        .await?;
        Ok(epoch)
    }

    async fn create_team(&self, name: &str) -> Result<TeamRecord> {
        let row: TeamRow = sqlx::query_as(
            "INSERT INTO teams (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at",
        )
        .bind(name)
        .bind(stamp(self.clock.now()))
        .fetch_one(&self.$write)
        .await?;
        row.try_into()
    }

    async fn teams(&self) -> Result<Vec<TeamRecord>> {
        let rows: Vec<TeamRow> =
            sqlx::query_as("SELECT id, name, created_at FROM teams ORDER BY name, id")
                .fetch_all(&self.$read)
                .await?;
        rows.into_iter().map(TeamRecord::try_from).collect()
    }

    async fn team(&self, id: TeamId) -> Result<Option<TeamRecord>> {
        let row: Option<TeamRow> =
            sqlx::query_as("SELECT id, name, created_at FROM teams WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.$read)
                .await?;
        row.map(TeamRecord::try_from).transpose()
    }

    async fn memberships(&self, email: &str) -> Result<Vec<(TeamRecord, Role)>> {
        let rows: Vec<(TeamId, String, String, String)> = sqlx::query_as(
            "SELECT t.id, t.name, t.created_at, m.role FROM team_members m \
             JOIN teams t ON t.id = m.team_id WHERE m.email = $1 ORDER BY t.name, t.id",
        )
        .bind(email)
        .fetch_all(&self.$read)
        .await?;
        rows.into_iter()
            .map(|(id, name, created_at, role)| {
                let team = TeamRecord::try_from(TeamRow {
                    id,
                    name,
                    created_at,
                })?;
                Ok((team, enum_from_name("role", &role)?))
            })
            .collect()
    }

    async fn members(&self, team_id: TeamId) -> Result<Vec<MemberRecord>> {
        let rows: Vec<MemberRow> = sqlx::query_as(
            "SELECT m.email, m.role, m.added_by, m.added_at, a.name FROM team_members m \
             LEFT JOIN accounts a ON a.email = m.email WHERE m.team_id = $1 \
             ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'operator' THEN 1 ELSE 2 END, m.email",
        )
        .bind(team_id)
        .fetch_all(&self.$read)
        .await?;
        rows.into_iter().map(MemberRecord::try_from).collect()
    }

    async fn set_member(&self, team_id: TeamId, email: &str, role: Role, by: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO team_members (team_id, email, role, added_by, added_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (team_id, email) DO UPDATE SET role = excluded.role",
        )
        .bind(team_id)
        .bind(email)
        .bind(role.key())
        .bind(by)
        .bind(stamp(self.clock.now()))
        .execute(&self.$write)
        .await?;
        Ok(())
    }

    async fn remove_member(&self, team_id: TeamId, email: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND email = $2")
            .bind(team_id)
            .bind(email)
            .execute(&self.$write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn save_link(&self, link: &LinkRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO account_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&link.secret_hash)
        .bind(super::rows::enum_name(&link.purpose)?)
        .bind(link.team_id)
        .bind(link.role.map(Role::key))
        .bind(&link.email)
        .bind(&link.created_by)
        .bind(stamp(link.created_at))
        .bind(stamp(link.expires_at))
        .execute(&self.$write)
        .await?;
        Ok(())
    }

    async fn open_link(
        &self,
        secret_hash: &str,
        purpose: LinkPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<LinkRecord>> {
        let row: Option<LinkRow> = sqlx::query_as(&format!(
            "SELECT {LINK_COLUMNS} FROM account_links WHERE secret_hash = $1 AND purpose = $2 \
             AND used_at IS NULL AND expires_at > $3"
        ))
        .bind(secret_hash)
        .bind(super::rows::enum_name(&purpose)?)
        .bind(stamp(now))
        .fetch_optional(&self.$read)
        .await?;
        row.map(LinkRecord::try_from).transpose()
    }

    async fn use_link(
        &self,
        secret_hash: &str,
        purpose: LinkPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<LinkRecord>> {
        let row: Option<LinkRow> = sqlx::query_as(&format!(
            "UPDATE account_links SET used_at = $1 WHERE secret_hash = $2 AND purpose = $3 \
             AND used_at IS NULL AND expires_at > $4 RETURNING {LINK_COLUMNS}"
        ))
        .bind(stamp(now))
        .bind(secret_hash)
        .bind(super::rows::enum_name(&purpose)?)
        .bind(stamp(now))
        .fetch_optional(&self.$write)
        .await?;
        row.map(LinkRecord::try_from).transpose()
    }

    async fn add_sign_in_failure(
        &self,
        subjects: &[String],
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.$write.begin().await?;
        sqlx::query("DELETE FROM sign_in_failures WHERE at < $1")
            .bind(stamp(forget_before))
            .execute(&mut *tx)
            .await?;
        for subject in subjects {
            sqlx::query("INSERT INTO sign_in_failures (subject, at) VALUES ($1, $2)")
                .bind(subject)
                .bind(stamp(at))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sign_in_failures(&self, subject: &str, since: DateTime<Utc>) -> Result<u32> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM sign_in_failures WHERE subject = $1 AND at >= $2")
                .bind(subject)
                .bind(stamp(since))
                .fetch_one(&self.$read)
                .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn clear_sign_in_failures(&self, subject: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE subject = $1")
            .bind(subject)
            .execute(&self.$write)
            .await?;
        Ok(())
    }
}
    };
}

account_queries!(super::sqlite::SqliteStorage, pool, writer);
account_queries!(super::postgres::PostgresStorage, pool, pool);
