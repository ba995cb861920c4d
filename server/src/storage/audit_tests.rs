//! The audit trail's storage tests, on both databases (see test_db.rs): appends,
//! order, teams kept apart, and `verify` catching an edited, a removed and a reordered row,
//! a head or a whole trail erased, a trail cut back below heads recorded earlier, and entries
//! signed with another key (the tampering done with plain SQL, as someone holding the
//! database would); an old unkeyed trail still verifying, and the keyed entries after it.

use super::test_db::{on_both_databases, Backend, TestDb};
use super::*;
use chrono::TimeZone;
use model::audit::AuditAction;

const TEAM: TeamId = TeamId::BUILT_IN;
const OTHER_TEAM: TeamId = TeamId::new(2);

impl TestDb {
    async fn append(&self, team: TeamId, action: AuditAction, n: u64) -> AuditEntry {
        self.storage()
            .append_audit(
                team,
                &NewAuditEntry {
                    actor: "me@example.com".into(),
                    action,
                    target: Some(format!("job-{n}")),
                    ..paused(n)
                },
            )
            .await
            .expect("append")
    }

    /// Runs `sql` on the file with the append-only triggers out of the way, as someone with
    /// the file (not Offboard) would.
    async fn tamper(&self, sql: &str) {
        for trigger in ["audit_entries_never_change", "audit_entries_never_removed"] {
            self.drop_trigger(trigger, "audit_entries").await;
        }
        self.execute(sql).await;
    }

    async fn verify(&self) -> ChainReport {
        self.storage().verify_audit().await.expect("verify")
    }

    /// Where `verify` finds the first break: the team, the entry and why.
    async fn first_break(&self) -> (TeamId, i64, BreakKind) {
        let broken = self.verify().await.broken.expect("a break");
        (broken.team_id, broken.seq, broken.why)
    }
}

/// The `n`th of the entries the racing tests append.
fn paused(n: u64) -> NewAuditEntry {
    NewAuditEntry {
        actor: "me".into(),
        action: AuditAction::RunPaused,
        target: None,
        details: serde_json::json!({ "n": n }),
    }
}

fn everything(limit: u32) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

/// One team's entries, oldest first: numbered 1, 2, 3…, the first chained to the start of
/// the trail and each later one to the entry before it.
fn assert_chain(entries: &[&AuditEntry]) {
    let mut prev_hash = audit::GENESIS.to_string();
    for (seq, entry) in (1..).zip(entries) {
        assert_eq!((entry.seq, &entry.prev_hash), (seq, &prev_hash));
        prev_hash = entry.hash.clone();
    }
}

async fn entries_are_numbered_chained_and_read_newest_first(backend: Backend) {
    let t = TestDb::new(backend, stamp_time()).await;
    let first = t.append(TEAM, AuditAction::PreviewMade, 1).await;
    let second = t.append(TEAM, AuditAction::RunConfirmed, 2).await;
    let third = t.append(TEAM, AuditAction::RunEnded, 3).await;
    assert_chain(&[&first, &second, &third]);
    assert_eq!(third.details, r#"{"n":3}"#);
    assert_eq!(third.target.as_deref(), Some("job-3"));

    let all = t
        .storage()
        .audit_entries(TEAM, &everything(10))
        .await
        .unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [3, 2, 1]);
    assert_eq!(all[0], third);

    // Paging: below entry 3, one at a time.
    let page = t
        .storage()
        .audit_entries(
            TEAM,
            &AuditQuery {
                before: Some(3),
                limit: 1,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);

    let ended = t
        .storage()
        .audit_entries(
            TEAM,
            &AuditQuery {
                action: Some(AuditAction::RunEnded),
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ended.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);

    let report = t.verify().await;
    assert_eq!(report.broken, None);
    assert_eq!(report.entries, 3);
    // Team 2 has written nothing: its head is the empty trail's, made with the team.
    assert_eq!(
        report.heads,
        vec![
            (TEAM, 3, third.hash.clone()),
            (OTHER_TEAM, 0, audit::GENESIS.to_string())
        ]
    );
}

async fn days_filter_on_the_stored_utc_time(backend: Backend) {
    let t = TestDb::new(backend, stamp_time()).await;
    for n in 1..=3 {
        t.append(TEAM, AuditAction::RunPaused, n).await;
    }
    // Place the entries on three days (tests may move times: the triggers are dropped).
    for (seq, day) in [(1, "2026-11-28"), (2, "2026-11-29"), (3, "2026-11-30")] {
        t.tamper(&format!(
            "UPDATE audit_entries SET at = '{day}T23:59:59.999999Z' WHERE seq = {seq}"
        ))
        .await;
    }
    let days = |from: Option<&str>, to: Option<&str>| AuditQuery {
        from_day: from.map(str::to_string),
        to_day: to.map(str::to_string),
        limit: 10,
        ..AuditQuery::default()
    };
    for (from, to, expected) in [
        (Some("2026-11-29"), None, vec![3, 2]),
        (None, Some("2026-11-29"), vec![2, 1]),
        (Some("2026-11-29"), Some("2026-11-29"), vec![2]),
        (Some("2026-12-01"), None, vec![]),
    ] {
        let found = t
            .storage()
            .audit_entries(TEAM, &days(from, to))
            .await
            .unwrap();
        let seqs: Vec<i64> = found.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, expected, "from {from:?} to {to:?}");
    }
}

async fn each_team_has_its_own_chain_and_sees_only_its_entries(backend: Backend) {
    let t = TestDb::new(backend, stamp_time()).await;
    let a1 = t.append(TEAM, AuditAction::PreviewMade, 1).await;
    let b1 = t.append(OTHER_TEAM, AuditAction::ConnectionSaved, 2).await;
    let a2 = t.append(TEAM, AuditAction::RunConfirmed, 3).await;
    assert_chain(&[&a1, &a2]);
    assert_chain(&[&b1]);

    let mine = t
        .storage()
        .audit_entries(TEAM, &everything(10))
        .await
        .unwrap();
    assert_eq!(mine, vec![a2.clone(), a1.clone()]);
    let theirs = t
        .storage()
        .audit_entries(OTHER_TEAM, &everything(10))
        .await
        .unwrap();
    assert_eq!(theirs, vec![b1.clone()]);

    let report = t.verify().await;
    assert_eq!(report.broken, None);
    assert_eq!(report.entries, 3);
    assert_eq!(
        report.heads,
        vec![(TEAM, 2, a2.hash), (OTHER_TEAM, 1, b1.hash)]
    );
}

async fn offboard_itself_cannot_change_or_remove_an_entry(backend: Backend) {
    let t = TestDb::new(backend, stamp_time()).await;
    t.append(TEAM, AuditAction::RunPaused, 1).await;
    for sql in [
        "UPDATE audit_entries SET actor = 'someone else'",
        "DELETE FROM audit_entries",
    ] {
        let refused = t.try_execute(sql).await.unwrap_err();
        assert!(
            refused.to_string().contains("append-only"),
            "{sql}: {refused}"
        );
    }
    assert_eq!(t.verify().await.broken, None);
}

async fn five_entries(backend: Backend) -> TestDb {
    let t = TestDb::new(backend, stamp_time()).await;
    for n in 1..=5 {
        t.append(TEAM, AuditAction::RunResumed, n).await;
    }
    t.append(OTHER_TEAM, AuditAction::RunResumed, 9).await;
    assert_eq!(t.verify().await.broken, None);
    t
}

async fn verify_finds_an_edited_row(backend: Backend) {
    let t = five_entries(backend).await;
    t.tamper("UPDATE audit_entries SET details = '{\"n\":0}' WHERE team_id = 1 AND seq = 3")
        .await;
    assert_eq!(t.first_break().await, (TEAM, 3, BreakKind::Edited));
}

async fn verify_finds_a_deleted_row_in_the_middle_and_at_the_end(backend: Backend) {
    let t = five_entries(backend).await;
    t.tamper("DELETE FROM audit_entries WHERE team_id = 1 AND seq = 2")
        .await;
    let broken = t.verify().await.broken.expect("a break");
    assert_eq!((broken.seq, broken.why), (2, BreakKind::Missing));

    let t = five_entries(backend).await;
    t.tamper("DELETE FROM audit_entries WHERE team_id = 1 AND seq = 5")
        .await;
    let broken = t.verify().await.broken.expect("a break");
    assert_eq!(
        (broken.seq, broken.why),
        (5, BreakKind::TailRemoved { last_found: 4 })
    );
}

async fn verify_finds_reordered_rows(backend: Backend) {
    let t = five_entries(backend).await;
    // Swap entries 2 and 3 (their numbers, so they read in the other order).
    t.tamper("UPDATE audit_entries SET seq = -2 WHERE team_id = 1 AND seq = 2")
        .await;
    t.tamper("UPDATE audit_entries SET seq = 2 WHERE team_id = 1 AND seq = 3")
        .await;
    t.tamper("UPDATE audit_entries SET seq = 3 WHERE team_id = 1 AND seq = -2")
        .await;
    let broken = t.verify().await.broken.expect("a break");
    assert_eq!((broken.seq, broken.why.clone()), (2, BreakKind::Edited));
    assert!(broken.to_string().contains("moved"), "{broken}");
}

async fn appends_keep_one_chain_when_they_race(backend: Backend) {
    let t = TestDb::new(backend, stamp_time()).await;
    let storage = t.db.storage.clone();
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let storage = storage.clone();
            tokio::spawn(async move {
                storage
                    .append_audit(TEAM, &paused(n))
                    .await
                    .expect("append")
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let report = t.verify().await;
    assert_eq!(report.broken, None);
    assert_eq!(report.entries, 20);
}

/// `verify` while the console appends (it may run beside a live console): never a false break.
async fn verify_beside_appends_sees_no_break(backend: Backend) {
    let t = TestDb::new(backend, stamp_time()).await;
    let storage = t.db.storage.clone();
    let appends = tokio::spawn(async move {
        for n in 0..40 {
            storage
                .append_audit(TEAM, &paused(n))
                .await
                .expect("append");
        }
    });
    let mut checks = 0;
    while !appends.is_finished() || checks == 0 {
        assert_eq!(t.verify().await.broken, None);
        checks += 1;
    }
    appends.await.expect("appends");
    let report = t.verify().await;
    assert_eq!((report.broken, report.entries), (None, 40));
}

/// The clock of the tests' databases (the trail stamps entries with it).
fn stamp_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// Every team has a head from its creation (migration 0013), so an erased trail shows.
async fn a_new_team_starts_with_an_empty_head(backend: Backend) {
    let t = TestDb::new(backend, stamp_time()).await;
    let team = t.storage().create_team("Third team").await.expect("team");
    let heads = t.storage().audit_heads().await.expect("heads");
    assert!(
        heads.contains(&(team.id, 0, audit::GENESIS.to_string())),
        "{heads:?}"
    );
    let report = t.verify().await;
    assert_eq!((report.broken, report.entries), (None, 0));
}

async fn verify_finds_an_erased_trail_and_a_removed_head(backend: Backend) {
    let t = five_entries(backend).await;
    t.tamper("DELETE FROM audit_entries WHERE team_id = 1")
        .await;
    t.execute("DELETE FROM audit_heads WHERE team_id = 1").await;
    let broken = t.verify().await.broken.expect("a break");
    assert_eq!(
        (broken.team_id, broken.seq, broken.why.clone()),
        (TEAM, 0, BreakKind::TrailErased)
    );
    assert!(broken.to_string().contains("team 1 exists"), "{broken}");

    let t = five_entries(backend).await;
    t.execute("DELETE FROM audit_heads WHERE team_id = 2").await;
    assert_eq!(
        t.first_break().await,
        (OTHER_TEAM, 1, BreakKind::HeadRemoved)
    );
}

async fn heads_recorded_earlier_catch_entries_cut_from_the_end(backend: Backend) {
    let t = five_entries(backend).await;
    // What the console logged: every team's head, as `verify` reports them too.
    let logged: String = t
        .storage()
        .audit_heads()
        .await
        .expect("heads")
        .iter()
        .map(|(team, seq, hash)| format!("{}\n", head_line(*team, *seq, hash)))
        .collect();
    let recorded = ExpectedHeads::parse(&logged).expect("parse");
    let report = t
        .storage()
        .verify_audit_against(&recorded)
        .await
        .expect("verify");
    assert_eq!((report.broken, report.recorded_found), (None, 2));

    // Entries 4 and 5 deleted and the head moved back to entry 3: intact in itself…
    t.tamper("DELETE FROM audit_entries WHERE team_id = 1 AND seq > 3")
        .await;
    t.execute(
        "UPDATE audit_heads SET last_seq = 3, last_hash = \
         (SELECT hash FROM audit_entries WHERE team_id = 1 AND seq = 3) WHERE team_id = 1",
    )
    .await;
    assert_eq!(t.verify().await.broken, None);
    // …but not what was recorded.
    let broken = t
        .storage()
        .verify_audit_against(&recorded)
        .await
        .expect("verify")
        .broken
        .expect("a break");
    assert_eq!(
        (broken.team_id, broken.seq, broken.why),
        (TEAM, 5, BreakKind::ShorterThanRecorded { last_found: 3 })
    );
}

async fn entries_signed_with_another_key_do_not_verify(backend: Backend) {
    let t = five_entries(backend).await;
    let other_key = crate::secret::AuditKey::from_bytes([3; 32]);
    let other = open_keyed(
        &t.url,
        Arc::new(test_db::FixedClock(stamp_time())),
        other_key,
    )
    .await
    .expect("open");
    let broken = other
        .storage
        .verify_audit()
        .await
        .expect("verify")
        .broken
        .expect("a break");
    assert_eq!((broken.seq, broken.why), (1, BreakKind::Edited));
    other.pool.close().await;
}

/// A trail written before the key (plain SHA-256, `chain` 1, as migration 0013 finds it)
/// keeps verifying once the console sealed it, and the keyed entries appended after it link
/// to it; the seal is made once, and no unkeyed entry passes beyond it.
async fn an_old_unkeyed_trail_verifies_and_keyed_entries_follow_it(backend: Backend) {
    let t = TestDb::new(backend, stamp_time()).await;
    // The test vector of storage/audit.rs: team 1's first entry, sealed with SHA-256, and its
    // head as the migration leaves it.
    let old = "f928ce94c91753d0730e373195f17e72ef93bc7f7d81b94f6ab2426b03e0f650";
    t.execute(&format!(
        "INSERT INTO audit_entries (team_id, seq, at, actor, action, target, details, \
         prev_hash, hash, chain) VALUES (1, 1, '2026-11-30T12:00:00.000000Z', \
         'me@example.com', 'run_paused', 'job-1', '{{\"n\":1}}', '{}', '{old}', 1)",
        audit::GENESIS
    ))
    .await;
    t.execute(&format!(
        "UPDATE audit_heads SET last_seq = 1, last_hash = '{old}', legacy_until = 1, \
         legacy_hash = '{old}' WHERE team_id = 1"
    ))
    .await;
    // Not sealed yet: held to the strict rule.
    let broken = t.verify().await.broken.expect("a break");
    assert_eq!((broken.seq, broken.why), (1, BreakKind::NotKeyed));

    assert_eq!(t.storage().seal_old_audit_entries().await.expect("seal"), 1);
    let report = t.verify().await;
    assert_eq!(
        (report.broken, report.entries, report.unkeyed),
        (None, 1, 1)
    );

    let keyed = t.append(TEAM, AuditAction::RunResumed, 2).await;
    assert_eq!((keyed.seq, keyed.prev_hash.as_str()), (2, old));
    let report = t.verify().await;
    assert_eq!(
        (report.broken, report.entries, report.unkeyed),
        (None, 2, 1)
    );

    // Whoever clears the seal and restarts the console gets no new one.
    t.execute("UPDATE audit_heads SET legacy_seal = '' WHERE team_id = 1")
        .await;
    assert_eq!(t.storage().seal_old_audit_entries().await.expect("seal"), 0);
    let broken = t.verify().await.broken.expect("a break");
    assert_eq!((broken.seq, broken.why), (1, BreakKind::NotKeyed));
}

/// No way back: an unkeyed entry after a keyed one is a break, whatever its hash.
async fn an_unkeyed_entry_after_keyed_ones_is_refused(backend: Backend) {
    let t = five_entries(backend).await;
    let fifth: String = match &t.db.pool {
        Pool::Sqlite(pool) => {
            sqlx::query_scalar("SELECT hash FROM audit_entries WHERE team_id = 1 AND seq = 5")
                .fetch_one(pool)
                .await
                .expect("hash")
        }
        Pool::Postgres(pool) => {
            sqlx::query_scalar("SELECT hash FROM audit_entries WHERE team_id = 1 AND seq = 5")
                .fetch_one(pool)
                .await
                .expect("hash")
        }
    };
    t.execute(&format!(
        "INSERT INTO audit_entries (team_id, seq, at, actor, action, target, details, \
         prev_hash, hash, chain) VALUES (1, 6, '2026-11-30T12:00:00.000000Z', 'x', \
         'run_paused', '', '{{}}', '{fifth}', '{}', 1)",
        "0".repeat(64)
    ))
    .await;
    let broken = t.verify().await.broken.expect("a break");
    assert_eq!((broken.seq, broken.why), (6, BreakKind::Downgraded));
}

on_both_databases!(
    a_new_team_starts_with_an_empty_head,
    verify_finds_an_erased_trail_and_a_removed_head,
    heads_recorded_earlier_catch_entries_cut_from_the_end,
    entries_signed_with_another_key_do_not_verify,
    an_old_unkeyed_trail_verifies_and_keyed_entries_follow_it,
    an_unkeyed_entry_after_keyed_ones_is_refused,
    entries_are_numbered_chained_and_read_newest_first,
    days_filter_on_the_stored_utc_time,
    each_team_has_its_own_chain_and_sees_only_its_entries,
    offboard_itself_cannot_change_or_remove_an_entry,
    appends_keep_one_chain_when_they_race,
    verify_finds_an_edited_row,
    verify_finds_a_deleted_row_in_the_middle_and_at_the_end,
    verify_finds_reordered_rows;
    multi_thread: verify_beside_appends_sees_no_break
);
