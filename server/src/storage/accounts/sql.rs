//! The statements of [`AccountStorage`], written once for both databases. Reads use the
//! pool, writes the writer (SQLite's own connection, so its transactions never interleave;
//! on PostgreSQL the transactions below lock a row first).

use super::*;
use crate::storage::column::{to_u64, Stamp};
use crate::storage::store::{Affected, Dialect, Store};

const LINK_COLUMNS: &str =
    "secret_hash, purpose, team_id, role, email, created_by, created_at, expires_at";
/// Where a link opens: unused, not revoked, not expired (`$now`), and an invitation only while
/// its maker is still an owner of its team (their invitations are voided when they stop being
/// one, and this checks again at use). Written with `{now}` for the time's placeholder.
fn link_opens(now: &str) -> String {
    format!(
        "used_at IS NULL AND revoked_at IS NULL AND expires_at > {now} \
         AND (purpose <> 'invitation' OR EXISTS (SELECT 1 FROM team_members m \
              WHERE m.team_id = account_links.team_id AND m.email = account_links.created_by \
              AND m.role = 'owner'))"
    )
}

/// A team and the account's role there (`memberships`).
#[derive(sqlx::FromRow)]
struct Membership {
    #[sqlx(flatten)]
    team: TeamRecord,
    role: Role,
}

#[async_trait]
impl<DB: Dialect> AccountStorage for Store<DB> {
    async fn account_count(&self) -> Result<u64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM accounts")
            .fetch_one(self.read())
            .await?;
        Ok(to_u64(n))
    }

    async fn create_account(&self, account: &NewAccount) -> Result<AccountRecord> {
        let mut conn = self.writer.acquire().await?;
        Self::insert_account(&mut conn, account, self.clock.now()).await
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(self.read())
        .await?)
    }

    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.read())
        .await?)
    }

    async fn set_password(&self, id: AccountId, hash: &Hidden<String>) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET password_hash = $1, session_epoch = session_epoch + 1 \
             WHERE id = $2",
        )
        .bind(hash.expose())
        .bind(id)
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn end_sessions(&self, id: AccountId) -> Result<i64> {
        let (epoch,): (i64,) = sqlx::query_as(
            "UPDATE accounts SET session_epoch = session_epoch + 1 WHERE id = $1 \
             RETURNING session_epoch",
        )
        .bind(id)
        .fetch_one(self.write())
        .await?;
        Ok(epoch)
    }

    async fn prove_email(&self, id: AccountId) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("UPDATE accounts SET email_proven = TRUE WHERE id = $1")
            .bind(id)
            .execute(DB::on(&mut *tx))
            .await?;
        let taken = sqlx::query(
            "UPDATE team_members SET account_id = $1 WHERE account_id IS NULL \
             AND email = (SELECT email FROM accounts WHERE id = $1)",
        )
        .bind(id)
        .execute(DB::on(&mut *tx))
        .await?;
        tx.commit().await?;
        Ok(taken.rows_affected())
    }

    async fn sso_account(&self, issuer: &str, subject: &str) -> Result<Option<AccountId>> {
        let row: Option<(AccountId,)> = sqlx::query_as(
            "SELECT account_id FROM sso_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(self.read())
        .await?;
        Ok(row.map(|(id,)| id))
    }

    async fn link_sso(&self, issuer: &str, subject: &str, account: AccountId) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO sso_identities (issuer, subject, account_id, linked_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(account)
        .bind(Stamp(self.clock.now()))
        .execute(self.write())
        .await;
        taken_as(done, StorageError::IdentityTaken).map(drop)
    }

    async fn has_sso(&self, account: AccountId, issuer: &str) -> Result<bool> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sso_identities WHERE account_id = $1 AND issuer = $2",
        )
        .bind(account)
        .bind(issuer)
        .fetch_one(self.read())
        .await?;
        Ok(n > 0)
    }

    async fn create_team(&self, name: &str) -> Result<TeamRecord> {
        Ok(sqlx::query_as(
            "INSERT INTO teams (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at",
        )
        .bind(name)
        .bind(Stamp(self.clock.now()))
        .fetch_one(self.write())
        .await?)
    }

    async fn teams(&self) -> Result<Vec<TeamRecord>> {
        Ok(
            sqlx::query_as("SELECT id, name, created_at FROM teams ORDER BY name, id")
                .fetch_all(self.read())
                .await?,
        )
    }

    async fn team(&self, id: TeamId) -> Result<Option<TeamRecord>> {
        Ok(
            sqlx::query_as("SELECT id, name, created_at FROM teams WHERE id = $1")
                .bind(id)
                .fetch_optional(self.read())
                .await?,
        )
    }

    async fn memberships(&self, account: AccountId) -> Result<Vec<(TeamRecord, Role)>> {
        let rows: Vec<Membership> = sqlx::query_as(
            "SELECT t.id, t.name, t.created_at, m.role FROM team_members m \
             JOIN teams t ON t.id = m.team_id WHERE m.account_id = $1 ORDER BY t.name, t.id",
        )
        .bind(account)
        .fetch_all(self.read())
        .await?;
        Ok(rows.into_iter().map(|m| (m.team, m.role)).collect())
    }

    async fn waiting_memberships(&self, email: &str) -> Result<u64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM team_members WHERE email = $1 AND account_id IS NULL",
        )
        .bind(email)
        .fetch_one(self.read())
        .await?;
        Ok(to_u64(n))
    }

    async fn members(&self, team_id: TeamId) -> Result<Vec<MemberRecord>> {
        Ok(sqlx::query_as(
            "SELECT m.email, m.role, m.added_by, m.added_at, a.name, m.account_id \
             FROM team_members m LEFT JOIN accounts a ON a.id = m.account_id \
             WHERE m.team_id = $1 \
             ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'operator' THEN 1 ELSE 2 END, m.email",
        )
        .bind(team_id)
        .fetch_all(self.read())
        .await?)
    }

    async fn set_member(
        &self,
        team_id: TeamId,
        email: &str,
        role: Role,
        by: &str,
        account: Option<AccountId>,
    ) -> Result<MemberChange> {
        let mut tx = self.writer.begin().await?;
        let before = Self::lock_team_and_read_role(&mut tx, team_id, email).await?;
        if before == Some(Role::Owner) && role != Role::Owner {
            Self::refuse_last_owner(&mut tx, team_id, email).await?;
            Self::void_invitations_of(&mut tx, team_id, email, self.clock.now()).await?;
        }
        sqlx::query(
            "INSERT INTO team_members (team_id, email, role, added_by, added_at, account_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (team_id, email) DO UPDATE \
             SET role = excluded.role, \
                 account_id = COALESCE(team_members.account_id, excluded.account_id)",
        )
        .bind(team_id)
        .bind(email)
        .bind(role)
        .bind(by)
        .bind(Stamp(self.clock.now()))
        .bind(account)
        .execute(DB::on(&mut *tx))
        .await?;
        tx.commit().await?;
        Ok(MemberChange { before })
    }

    async fn remove_member(&self, team_id: TeamId, email: &str) -> Result<Option<Role>> {
        let mut tx = self.writer.begin().await?;
        let before = Self::lock_team_and_read_role(&mut tx, team_id, email).await?;
        if before == Some(Role::Owner) {
            Self::refuse_last_owner(&mut tx, team_id, email).await?;
            Self::void_invitations_of(&mut tx, team_id, email, self.clock.now()).await?;
        }
        sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND email = $2")
            .bind(team_id)
            .bind(email)
            .execute(DB::on(&mut *tx))
            .await?;
        tx.commit().await?;
        Ok(before)
    }

    async fn save_link(&self, link: &LinkRecord) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO account_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&link.secret_hash)
        .bind(link.purpose)
        .bind(link.team_id)
        .bind(link.role)
        .bind(&link.email)
        .bind(&link.created_by)
        .bind(Stamp(link.created_at))
        .bind(Stamp(link.expires_at))
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn open_link(
        &self,
        secret_hash: &str,
        purpose: LinkPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<LinkRecord>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {LINK_COLUMNS} FROM account_links WHERE secret_hash = $1 AND purpose = $2 \
             AND {}",
            link_opens("$3")
        ))
        .bind(secret_hash)
        .bind(purpose)
        .bind(Stamp(now))
        .fetch_optional(self.read())
        .await?)
    }

    async fn use_link(
        &self,
        secret_hash: &str,
        purpose: LinkPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<LinkRecord>> {
        Ok(sqlx::query_as(&format!(
            "UPDATE account_links SET used_at = $1 WHERE secret_hash = $2 AND purpose = $3 \
             AND {} RETURNING {LINK_COLUMNS}",
            link_opens("$1")
        ))
        .bind(Stamp(now))
        .bind(secret_hash)
        .bind(purpose)
        .fetch_optional(self.write())
        .await?)
    }

    async fn accept_invitation(
        &self,
        secret_hash: &str,
        joiner: Joiner<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<(AccountRecord, TeamId, Role, LinkRecord)>> {
        let mut tx = self.writer.begin().await?;
        // The team's row is locked before the link's, in the order an owner's demotion takes
        // them (team, then their invitations), so the two never wait on each other.
        let team: Option<(Option<TeamId>,)> = sqlx::query_as(
            "SELECT team_id FROM account_links WHERE secret_hash = $1 AND purpose = 'invitation'",
        )
        .bind(secret_hash)
        .fetch_optional(DB::on(&mut *tx))
        .await?;
        let Some((Some(team_id),)) = team else {
            return Ok(None);
        };
        let before = Self::lock_team_and_read_role(&mut tx, team_id, joiner.email()).await?;
        // Used only by the account its email names: the same statement that marks it used.
        let row: Option<LinkRecord> = sqlx::query_as(&format!(
            "UPDATE account_links SET used_at = $1 WHERE secret_hash = $2 \
             AND purpose = 'invitation' AND email = $3 AND {} RETURNING {LINK_COLUMNS}",
            link_opens("$1")
        ))
        .bind(Stamp(now))
        .bind(secret_hash)
        .bind(joiner.email())
        .fetch_optional(DB::on(&mut *tx))
        .await?;
        let Some(link) = row else {
            return Ok(None);
        };
        let Some(role) = link.role.filter(|_| link.team_id == Some(team_id)) else {
            return Ok(None);
        };
        let account = match joiner {
            Joiner::Existing(account) => account.clone(),
            Joiner::New(account) => Self::insert_account(&mut tx, account, now).await?,
        };
        // An invitation never lowers a role someone already has.
        let role = before.map_or(role, |was| was.max(role));
        sqlx::query(
            "INSERT INTO team_members (team_id, email, role, added_by, added_at, account_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (team_id, email) DO UPDATE \
             SET role = excluded.role, account_id = excluded.account_id",
        )
        .bind(team_id)
        .bind(&account.email)
        .bind(role)
        .bind(&link.created_by)
        .bind(Stamp(now))
        .bind(account.id)
        .execute(DB::on(&mut *tx))
        .await?;
        tx.commit().await?;
        Ok(Some((account, team_id, role, link)))
    }

    async fn open_invitations(
        &self,
        team_id: TeamId,
        now: DateTime<Utc>,
    ) -> Result<Vec<LinkRecord>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {LINK_COLUMNS} FROM account_links WHERE purpose = 'invitation' \
             AND team_id = $1 AND {} ORDER BY expires_at, secret_hash",
            link_opens("$2")
        ))
        .bind(team_id)
        .bind(Stamp(now))
        .fetch_all(self.read())
        .await?)
    }

    async fn revoke_invitation(
        &self,
        team_id: TeamId,
        secret_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE account_links SET revoked_at = $1 WHERE purpose = 'invitation' \
             AND team_id = $2 AND secret_hash = $3 AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(Stamp(now))
        .bind(team_id)
        .bind(secret_hash)
        .execute(self.write())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn reserve_sign_in(
        &self,
        subjects: &[String],
        attempt: &str,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<Vec<u32>> {
        let mut tx = self.writer.begin().await?;
        // One row per subject, written first: on PostgreSQL a second attempt for the same
        // subject waits here until this one commits, so its count includes this attempt.
        // Sorted, so two attempts sharing subjects lock them in the same order.
        let mut ordered: Vec<&String> = subjects.iter().collect();
        ordered.sort();
        for subject in &ordered {
            sqlx::query(
                "INSERT INTO sign_in_subjects (subject) VALUES ($1) \
                 ON CONFLICT (subject) DO UPDATE SET subject = excluded.subject",
            )
            .bind(subject.as_str())
            .execute(DB::on(&mut *tx))
            .await?;
        }
        sqlx::query("DELETE FROM sign_in_failures WHERE at < $1")
            .bind(Stamp(since))
            .execute(DB::on(&mut *tx))
            .await?;
        let mut counts = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM sign_in_failures WHERE subject = $1 AND at >= $2",
            )
            .bind(subject)
            .bind(Stamp(since))
            .fetch_one(DB::on(&mut *tx))
            .await?;
            counts.push(u32::try_from(n).unwrap_or(u32::MAX));
            sqlx::query("INSERT INTO sign_in_failures (subject, at, attempt) VALUES ($1, $2, $3)")
                .bind(subject)
                .bind(Stamp(at))
                .bind(attempt)
                .execute(DB::on(&mut *tx))
                .await?;
        }
        tx.commit().await?;
        Ok(counts)
    }

    async fn release_sign_in(&self, attempt: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE attempt = $1")
            .bind(attempt)
            .execute(self.write())
            .await?;
        Ok(())
    }

    async fn forget_sign_in_subjects(&self, before: DateTime<Utc>) -> Result<u64> {
        sqlx::query("DELETE FROM sign_in_failures WHERE at < $1")
            .bind(Stamp(before))
            .execute(self.write())
            .await?;
        // A reservation that commits meanwhile keeps its failure row; if its subject's row
        // went, the next attempt writes it again. Nothing is lost either way.
        let gone = sqlx::query(
            "DELETE FROM sign_in_subjects WHERE NOT EXISTS \
             (SELECT 1 FROM sign_in_failures f WHERE f.subject = sign_in_subjects.subject)",
        )
        .execute(self.write())
        .await?;
        Ok(gone.rows_affected())
    }

    async fn sign_in_failures(&self, subject: &str, since: DateTime<Utc>) -> Result<u32> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM sign_in_failures WHERE subject = $1 AND at >= $2")
                .bind(subject)
                .bind(Stamp(since))
                .fetch_one(self.read())
                .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn clear_sign_in_failures(&self, subject: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE subject = $1")
            .bind(subject)
            .execute(self.write())
            .await?;
        Ok(())
    }
}
