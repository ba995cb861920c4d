//! Turns what the admin chose (a file, the deactivated users, ticked users) into a preview of
//! exactly which accounts a run would touch, and re-checks that preview against a fresh listing
//! right before the run.

use std::collections::{HashMap, HashSet};

use model::deletion::{
    Candidate, Choice, ItemOutcome, ItemResult, Preview, PreviewCounts, PreviewOutcome, PreviewRow,
    PreviewSource, SiteUser, UnreadLines,
};

use crate::engine::file_input::{classify_cell, AdminFile, EntryValue};
use crate::engine::{ItemState, RunTarget};

/// The admin's safety settings for one preview.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Moderators/Admins are demoted to Registered and then processed (else they are skipped).
    pub demote_privileged: bool,
    /// Accounts with any of these emails are never touched.
    pub protected_emails: Vec<String>,
    /// The signed-in admin's own email: their account is never touched.
    pub operator_email: Option<String>,
}

impl Policy {
    /// Why this user may not be touched, or None.
    fn protection(&self, user: &SiteUser) -> Option<String> {
        if let Some(own) = self.operator_email.as_deref() {
            if !own.trim().is_empty() && user.has_email(own) {
                return Some(format!("this is your own account ({})", own.trim()));
            }
        }
        self.protected_emails
            .iter()
            .map(|e| e.trim())
            .find(|e| !e.is_empty() && user.has_email(e))
            .map(|e| format!("{e} is on the protected list"))
    }
}

/// The site's system account (the "Community" user that owns orphaned content) must never be
/// deleted. SCIM gives no flag for it, so this decides by what Stack and Stack Exchange sites
/// use: account ID `-1` or `0`, or an account named "Community" (user name or display name,
/// any case) that has no email, since a person called Community would still have one. The
/// runner also treats a DELETE answered 400 "System Accounts" as a system account, so a system
/// account this misses is still refused by the site, not deleted.
pub fn is_system_account(user: &SiteUser) -> bool {
    let id = user.id.trim();
    let named_community = [&user.user_name, &user.display_name]
        .into_iter()
        .flatten()
        .any(|n| n.trim().eq_ignore_ascii_case("community"));
    id == "-1" || id == "0" || (named_community && user.emails.iter().all(|e| e.trim().is_empty()))
}

/// Resolves every entry of the admin's file against the site's users.
pub fn resolve_file(
    file: &AdminFile,
    file_name: &str,
    users: &[SiteUser],
    policy: &Policy,
) -> Preview {
    let mut selection = Selection::new(policy);
    let directory = Directory::new(users);
    let rows = file
        .entries
        .iter()
        .map(|entry| {
            let mut row = match &entry.value {
                EntryValue::Invalid(reason) => {
                    blank_row(&entry.raw, PreviewOutcome::Invalid, reason.clone())
                }
                EntryValue::Email(email) => match directory.with_email(email).as_slice() {
                    [] => blank_row(
                        &entry.raw,
                        PreviewOutcome::NotFound,
                        "no account on the site has this email".to_string(),
                    ),
                    [user] => selection.decide(&entry.raw, user),
                    matches @ [_, _, ..] => {
                        // No account is picked: showing the first one's details would read
                        // as if it were the one chosen, so every candidate is listed instead.
                        let candidates = matches.iter().map(|u| Candidate::of(u)).collect();
                        ambiguous_row(&entry.raw, candidates)
                    }
                },
                EntryValue::AccountId(id) => match directory.by_id(id) {
                    Some(user) => selection.decide(&entry.raw, user),
                    None => blank_row(
                        &entry.raw,
                        PreviewOutcome::NotFound,
                        "no account has this account ID (account IDs are not the user IDs in profile links)"
                            .to_string(),
                    ),
                },
            };
            row.line = Some(entry.line);
            row
        })
        .collect();
    let mut preview = preview(
        PreviewSource::File {
            file_name: file_name.to_string(),
            column: file.column.clone(),
        },
        rows,
        policy,
    );
    preview.unread_lines = file.unread_lines.clone();
    preview
}

/// Every user the listing shows as deactivated, checked here because a provider may ignore a
/// filter and return everyone. In listing order, one row per user (input = account ID).
pub fn select_deactivated(users: &[SiteUser], policy: &Policy) -> Preview {
    let mut selection = Selection::new(policy);
    let rows = users
        .iter()
        .filter(|u| !u.active)
        .map(|u| selection.decide(&u.id, u))
        .collect();
    preview(PreviewSource::Deactivated, rows, policy)
}

/// The users the admin ticked. Decision: a ticked user who is active (re-activated since the
/// list was shown, or ticked from a full listing) is still allowed, since the admin chose that
/// very account, but the row says so plainly so the preview shows it before confirmation.
pub fn select_picked(account_ids: &[String], users: &[SiteUser], policy: &Policy) -> Preview {
    let mut selection = Selection::new(policy);
    let directory = Directory::new(users);
    let rows = account_ids
        .iter()
        .map(|id| {
            let id = id.trim();
            match directory.by_id(id) {
                None => blank_row(
                    id,
                    PreviewOutcome::NotFound,
                    "no account has this account ID any more".to_string(),
                ),
                Some(user) => {
                    let mut row = selection.decide(id, user);
                    if user.active && row.outcome == PreviewOutcome::Selected {
                        row.reason =
                            join_reasons(&row.reason, "active: this user is not deactivated");
                    }
                    row
                }
            }
        })
        .collect();
    preview(PreviewSource::Picked, rows, policy)
}

/// Which of the preview's selected accounts may still be acted on, given a fresh listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recheck {
    /// Unchanged since the preview: the run acts on these, in preview order.
    pub targets: Vec<RunTarget>,
    /// Changed since the preview: left alone, with what changed.
    pub changed: Vec<ItemResult>,
}

/// Re-checks every selected row of a confirmed preview against `fresh_users`. A row runs only
/// if everything the admin saw is still true; anything else is reported, never guessed at.
pub fn recheck(preview: &Preview, fresh_users: &[SiteUser], policy: &Policy) -> Recheck {
    // Demotion needs both the confirmed preview and today's policy to allow it.
    let demote = preview.demote_privileged && policy.demote_privileged;
    let from_file = matches!(preview.source, PreviewSource::File { .. });
    let directory = Directory::new(fresh_users);
    let mut seen = HashSet::new();
    let mut result = Recheck {
        targets: Vec::new(),
        changed: Vec::new(),
    };
    for row in preview.selected() {
        let input_email = file_email(row, from_file);
        let Some(account_id) = row.account_id.as_deref() else {
            result.changed.push(changed(
                row.input.clone(),
                input_email,
                "the preview row has no account".to_string(),
            ));
            continue;
        };
        if !seen.insert(account_id.to_string()) {
            continue;
        }
        let fresh = directory.by_id(account_id);
        let email = input_email
            .clone()
            .or_else(|| fresh.and_then(|u| u.display_email().map(str::to_string)))
            .or_else(|| row.emails.first().cloned());
        match what_changed(
            row,
            fresh,
            input_email.as_deref(),
            &directory,
            policy,
            demote,
            &preview.source,
        ) {
            None => result.targets.push(RunTarget {
                account_id: account_id.to_string(),
                email,
                state: ItemState::Pending,
            }),
            Some(message) => result
                .changed
                .push(changed(account_id.to_string(), email, message)),
        }
    }
    result
}

/// The email a file row selected its user by (None for picked users and account-ID rows).
fn file_email(row: &PreviewRow, from_file: bool) -> Option<String> {
    match classify_cell(&row.input) {
        EntryValue::Email(e) if from_file => Some(e),
        _ => None,
    }
}

fn what_changed(
    row: &PreviewRow,
    fresh: Option<&SiteUser>,
    input_email: Option<&str>,
    directory: &Directory,
    policy: &Policy,
    demote: bool,
    source: &PreviewSource,
) -> Option<String> {
    let Some(user) = fresh else {
        return Some("no longer on the site".to_string());
    };
    let check = TargetCheck::for_row(row, input_email, demote, source);
    if let Some(why) = check.changed(user, policy) {
        return Some(why);
    }
    // Only the whole listing can tell that another account now has the same email. A row
    // the admin chose an account for knew of its other candidates: only a new one counts.
    let known =
        |id: &str| row.chosen.is_some() && row.candidates.iter().any(|c| c.account_id.trim() == id);
    if let Some(email) = input_email {
        let others: Vec<&str> = directory
            .with_email(email)
            .iter()
            .map(|u| u.id.as_str())
            .filter(|id| id.trim() != user.id.trim() && !known(id.trim()))
            .collect();
        if !others.is_empty() {
            return Some(format!(
                "email now shared with account {}",
                others.join(", ")
            ));
        }
    }
    None
}

/// What a selected user must still look like for the run to act on them: checked against the
/// whole listing when a run starts ([`recheck`]), and against a fresh GET of that one user when
/// a paused or interrupted run resumes (the runner's re-read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetCheck {
    /// The email from the admin's file that selected the user (file previews only).
    pub email: Option<String>,
    /// Deactivated when previewed, and chosen because of it: must still be.
    pub must_stay_inactive: bool,
    /// A Moderator/Admin may be acted on (the admin confirmed "demote first").
    pub privileged_allowed: bool,
}

impl TargetCheck {
    fn for_row(
        row: &PreviewRow,
        input_email: Option<&str>,
        demote: bool,
        source: &PreviewSource,
    ) -> TargetCheck {
        let was_inactive = row.active == Some(false);
        TargetCheck {
            email: input_email.map(str::to_string),
            must_stay_inactive: match source {
                PreviewSource::Deactivated => true,
                PreviewSource::Picked => was_inactive,
                PreviewSource::File { .. } => false,
            },
            privileged_allowed: demote,
        }
    }

    /// Why `user` no longer matches, in the words a result shows; None when it still does.
    pub fn changed(&self, user: &SiteUser, policy: &Policy) -> Option<String> {
        if is_system_account(user) {
            return Some("now looks like the site's system account".to_string());
        }
        if let Some(why) = policy.protection(user) {
            return Some(format!("now protected: {why}"));
        }
        if user.role.is_privileged() && !self.privileged_allowed {
            return Some(format!("now has role {}", user.role));
        }
        if let Some(email) = self.email.as_deref() {
            if !user.has_email(email) {
                return Some(format!("no longer has the email {email}"));
            }
        }
        if self.must_stay_inactive && user.active {
            return Some("was re-activated".to_string());
        }
        None
    }
}

/// The check for every user a confirmed preview selected, by account ID, for a run that
/// resumes: `demote` is whether the run demotes (the preview and today's policy both allow it).
pub fn target_checks(preview: &Preview, demote: bool) -> HashMap<String, TargetCheck> {
    let from_file = matches!(preview.source, PreviewSource::File { .. });
    preview
        .selected()
        .filter_map(|row| {
            let account_id = row.account_id.as_deref()?.trim().to_string();
            let input_email = file_email(row, from_file);
            let check = TargetCheck::for_row(row, input_email.as_deref(), demote, &preview.source);
            Some((account_id, check))
        })
        .collect()
}

fn changed(account_id: String, email: Option<String>, message: String) -> ItemResult {
    ItemResult {
        account_id,
        email,
        outcome: ItemOutcome::ChangedSincePreview,
        message,
        attempts: 0,
        elapsed_ms: 0,
        demoted: false,
    }
}

/// The listing indexed by account ID and by email, so a 100,000-row file against a site of
/// 100,000 users is not ten billion comparisons. Email keys follow [`SiteUser::has_email`]:
/// trimmed, ASCII case folded.
struct Directory<'a> {
    users: &'a [SiteUser],
    by_id: HashMap<&'a str, usize>,
    by_email: HashMap<String, Vec<usize>>,
}

impl<'a> Directory<'a> {
    fn new(users: &'a [SiteUser]) -> Self {
        let mut by_id = HashMap::new();
        let mut by_email: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, user) in users.iter().enumerate() {
            by_id.entry(user.id.trim()).or_insert(i);
            for email in &user.emails {
                let key = email_key(email);
                if key.is_empty() {
                    continue;
                }
                let holders = by_email.entry(key).or_default();
                if holders.last() != Some(&i) {
                    holders.push(i);
                }
            }
        }
        Directory {
            users,
            by_id,
            by_email,
        }
    }

    /// The account with this ID (the first, should a listing repeat it).
    fn by_id(&self, id: &str) -> Option<&'a SiteUser> {
        self.by_id.get(id.trim()).map(|i| &self.users[*i])
    }

    /// Accounts having `email` among any of their emails, each account once, in listing order.
    fn with_email(&self, email: &str) -> Vec<&'a SiteUser> {
        let mut seen = HashSet::new();
        self.by_email
            .get(&email_key(email))
            .into_iter()
            .flatten()
            .map(|i| &self.users[*i])
            .filter(|u| seen.insert(u.id.trim()))
            .collect()
    }
}

fn email_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// Applies the per-account rules, remembering which accounts earlier rows already selected.
struct Selection<'p> {
    policy: &'p Policy,
    selected: HashSet<String>,
}

impl<'p> Selection<'p> {
    fn new(policy: &'p Policy) -> Self {
        Selection {
            policy,
            selected: HashSet::new(),
        }
    }

    fn decide(&mut self, input: &str, user: &SiteUser) -> PreviewRow {
        let mut row = row_for_user(input, user);
        let (outcome, reason) = if is_system_account(user) {
            (
                PreviewOutcome::SystemAccount,
                "the site's system account is never touched".to_string(),
            )
        } else if let Some(why) = self.policy.protection(user) {
            (PreviewOutcome::Protected, why)
        } else if self.selected.contains(user.id.trim()) {
            (
                PreviewOutcome::Duplicate,
                format!("account {} is already selected by an earlier row", user.id),
            )
        } else if user.role.is_privileged() && !self.policy.demote_privileged {
            (
                PreviewOutcome::Privileged,
                format!(
                    "{} accounts are skipped unless \"demote first\" is chosen",
                    user.role
                ),
            )
        } else if user.role.is_privileged() {
            (
                PreviewOutcome::Selected,
                format!("{}: will be demoted to Registered first", user.role),
            )
        } else {
            (PreviewOutcome::Selected, String::new())
        };
        if outcome == PreviewOutcome::Selected {
            self.selected.insert(user.id.trim().to_string());
        }
        row.outcome = outcome;
        row.reason = reason;
        row
    }
}

fn row_for_user(input: &str, user: &SiteUser) -> PreviewRow {
    PreviewRow {
        line: None,
        input: input.to_string(),
        outcome: PreviewOutcome::Selected,
        account_id: Some(user.id.clone()),
        user_name: user.user_name.clone(),
        display_name: user.display_name.clone(),
        emails: user.emails.clone(),
        active: Some(user.active),
        role: Some(user.role.clone()),
        reason: String::new(),
        candidates: Vec::new(),
        earlier_run: None,
        may_be_refused: None,
        chosen: None,
    }
}

/// A row whose email several accounts share: none is touched until the admin chooses one.
fn ambiguous_row(input: &str, candidates: Vec<Candidate>) -> PreviewRow {
    let ids = candidates
        .iter()
        .map(|c| c.account_id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut row = blank_row(
        input,
        PreviewOutcome::Ambiguous,
        format!("this email belongs to several accounts ({ids}); none will be touched"),
    );
    row.candidates = candidates;
    row
}

/// Why a choice among an ambiguous row's candidates was refused, in the admin's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChoiceRefused(pub String);

/// The row `row` becomes when the admin chooses `account_id` among its candidates: selected
/// for that account, under the same rules as any other row (system account, protected,
/// already selected by another row, moderator/admin without "demote first"), noting who
/// chose and when. `selected_elsewhere` gives the line (or None) of another row that already
/// selects an account. Refused for a row that is not ambiguous, already has a choice, or an
/// account that is not one of its candidates.
pub fn choose_candidate(
    row: &PreviewRow,
    account_id: &str,
    selected_elsewhere: impl Fn(&str) -> Option<Option<usize>>,
    policy: &Policy,
    choice: Choice,
) -> Result<PreviewRow, ChoiceRefused> {
    let line = row_name(row);
    if let Some(earlier) = &row.chosen {
        return Err(ChoiceRefused(format!(
            "Account {} was already chosen for {line} by {}: undo that choice first.",
            earlier.account_id, earlier.by
        )));
    }
    if row.outcome != PreviewOutcome::Ambiguous {
        return Err(ChoiceRefused(format!(
            "{} is not ambiguous: there is nothing to choose.",
            capitalised(&line)
        )));
    }
    let wanted = account_id.trim();
    let Some(candidate) = row
        .candidates
        .iter()
        .find(|c| c.account_id.trim() == wanted)
    else {
        return Err(ChoiceRefused(format!(
            "Account {wanted} is not one of the accounts {line} could mean; nothing was chosen."
        )));
    };
    if let Some(other) = selected_elsewhere(candidate.account_id.trim()) {
        let by = other.map_or("another row".to_string(), |l| format!("line {l}"));
        return Err(ChoiceRefused(format!(
            "Account {} is already selected by {by}; nothing was chosen.",
            candidate.account_id
        )));
    }
    let user = SiteUser {
        id: candidate.account_id.clone(),
        user_name: candidate.user_name.clone(),
        display_name: candidate.display_name.clone(),
        emails: candidate.emails.clone(),
        primary_email: candidate.emails.first().cloned(),
        active: candidate.active.unwrap_or(true),
        role: candidate.role.clone().unwrap_or_default(),
        ..SiteUser::default()
    };
    let mut chosen = Selection::new(policy).decide(&row.input, &user);
    if chosen.outcome != PreviewOutcome::Selected {
        return Err(ChoiceRefused(format!(
            "Account {} cannot be chosen: {}.",
            candidate.account_id, chosen.reason
        )));
    }
    chosen.line = row.line;
    chosen.active = candidate.active;
    chosen.role = candidate.role.clone();
    // "chosen by …" first: the reports cite it as the reason the row was acted on.
    chosen.reason = match chosen.reason.as_str() {
        "" => format!("chosen by {}", choice.by),
        rule => format!("chosen by {}; {rule}", choice.by),
    };
    chosen.candidates = row.candidates.clone();
    chosen.chosen = Some(Choice {
        account_id: candidate.account_id.clone(),
        ..choice
    });
    Ok(chosen)
}

/// The ambiguous row a chosen row was, before the choice: what "Undo choice" puts back.
pub fn undo_choice(row: &PreviewRow) -> Result<PreviewRow, ChoiceRefused> {
    if row.chosen.is_none() || row.candidates.is_empty() {
        return Err(ChoiceRefused(format!(
            "No account was chosen for {}: there is nothing to undo.",
            row_name(row)
        )));
    }
    let mut ambiguous = ambiguous_row(&row.input, row.candidates.clone());
    ambiguous.line = row.line;
    Ok(ambiguous)
}

/// "line 4 (bob@example.com)", or the input alone for a row without a line.
pub fn row_name(row: &PreviewRow) -> String {
    match row.line {
        Some(line) => format!("line {line} ({})", row.input),
        None => row.input.clone(),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A row with no account: what a row that matched nobody starts from (and the engine's tests).
pub(crate) fn blank_row(input: &str, outcome: PreviewOutcome, reason: String) -> PreviewRow {
    PreviewRow {
        line: None,
        input: input.to_string(),
        outcome,
        account_id: None,
        user_name: None,
        display_name: None,
        emails: Vec::new(),
        active: None,
        role: None,
        reason,
        candidates: Vec::new(),
        earlier_run: None,
        may_be_refused: None,
        chosen: None,
    }
}

fn join_reasons(first: &str, second: &str) -> String {
    if first.is_empty() {
        second.to_string()
    } else {
        format!("{first}; {second}")
    }
}

/// The preview of these rows, counted (also what the engine's tests build previews with).
pub(crate) fn preview(source: PreviewSource, rows: Vec<PreviewRow>, policy: &Policy) -> Preview {
    Preview {
        source,
        counts: PreviewCounts::from_rows(&rows),
        rows,
        demote_privileged: policy.demote_privileged,
        unread_lines: UnreadLines::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::file_input::read_admin_file;
    use model::deletion::Role;

    fn user(id: &str, emails: &[&str]) -> SiteUser {
        SiteUser {
            id: id.to_string(),
            user_name: Some(format!("user{id}")),
            display_name: Some(format!("User {id}")),
            emails: emails.iter().map(|e| e.to_string()).collect(),
            primary_email: emails.first().map(|e| e.to_string()),
            active: true,
            ..SiteUser::default()
        }
    }

    fn with_role(mut u: SiteUser, role: Role) -> SiteUser {
        u.role = role;
        u
    }

    fn inactive(mut u: SiteUser) -> SiteUser {
        u.active = false;
        u
    }

    fn file(text: &str) -> AdminFile {
        read_admin_file(text.as_bytes(), None).unwrap()
    }

    fn outcomes(p: &Preview) -> Vec<(Option<usize>, PreviewOutcome, Option<&str>)> {
        p.rows
            .iter()
            .map(|r| (r.line, r.outcome, r.account_id.as_deref()))
            .collect()
    }

    fn site() -> Vec<SiteUser> {
        vec![
            user("10", &["ann@x.com"]),
            user("11", &["bob@x.com", "Robert@Alias.com"]),
            user("12", &["shared@x.com"]),
            user("13", &["SHARED@x.com", "carol@x.com"]),
            with_role(user("14", &["mod@x.com"]), Role::Moderator),
            with_role(user("15", &["boss@x.com"]), Role::Admin),
            user("16", &["me@x.com"]),
            SiteUser {
                id: "-1".into(),
                user_name: Some("Community".into()),
                ..SiteUser::default()
            },
            user("17", &[]),
        ]
    }

    #[test]
    fn resolves_every_kind_of_row() {
        let policy = Policy {
            operator_email: Some("ME@x.com".into()),
            protected_emails: vec!["carol@x.com".into()],
            ..Policy::default()
        };
        let text =
            "Email\nANN@x.com\n robert@alias.com\nshared@x.com\nnobody@x.com\nnot an email\n\
                    mod@x.com\n16\nann@x.com\n10\n-1\n999\n";
        let p = resolve_file(&file(text), "leavers.csv", &site(), &policy);
        use PreviewOutcome::*;
        assert_eq!(
            outcomes(&p),
            vec![
                (Some(2), Selected, Some("10")),
                (Some(3), Selected, Some("11")),
                (Some(4), Ambiguous, None),
                (Some(5), NotFound, None),
                (Some(6), Invalid, None),
                (Some(7), Privileged, Some("14")),
                (Some(8), Protected, Some("16")),
                (Some(9), Duplicate, Some("10")),
                (Some(10), Duplicate, Some("10")),
                (Some(11), Invalid, None),
                (Some(12), NotFound, None),
            ]
        );
        assert!(p.rows[2].reason.contains("12, 13"), "{}", p.rows[2].reason);
        // An ambiguous row names no account of its own; it lists every candidate instead.
        let candidates: Vec<&str> = p.rows[2]
            .candidates
            .iter()
            .map(|c| c.account_id.as_str())
            .collect();
        assert_eq!(candidates, vec!["12", "13"]);
        assert!(p.rows[2].display_name.is_none() && p.rows[2].emails.is_empty());
        assert!(p
            .rows
            .iter()
            .enumerate()
            .all(|(i, r)| i == 2 || r.candidates.is_empty()));
        assert_eq!(p.rows[6].reason, "this is your own account (ME@x.com)");
        assert_eq!(p.counts.selected, 2);
        assert_eq!(p.counts.duplicate, 2);
        assert_eq!(p.counts.ambiguous, 1);
        assert_eq!(p.counts.not_found, 2);
        assert_eq!(p.counts.invalid, 2);
        assert!(!p.demote_privileged);
        let PreviewSource::File { file_name, column } = &p.source else {
            panic!("source should be a file")
        };
        assert_eq!(file_name, "leavers.csv");
        assert_eq!(column.header.as_deref(), Some("Email"));
        let bob = &p.rows[1];
        assert_eq!(bob.input, "robert@alias.com");
        assert_eq!(bob.emails, vec!["bob@x.com", "Robert@Alias.com"]);
        assert_eq!(bob.user_name.as_deref(), Some("user11"));
        assert_eq!(bob.active, Some(true));
        assert_eq!(bob.role, Some(Role::Registered));
    }

    #[test]
    fn protected_list_covers_every_email_of_the_account() {
        let policy = Policy {
            protected_emails: vec![" ROBERT@alias.com ".into()],
            ..Policy::default()
        };
        let p = resolve_file(&file("bob@x.com\n"), "f.csv", &site(), &policy);
        assert_eq!(p.rows[0].outcome, PreviewOutcome::Protected);
        assert_eq!(
            p.rows[0].reason,
            "ROBERT@alias.com is on the protected list"
        );
    }

    #[test]
    fn privileged_users_are_selected_only_when_demotion_is_allowed() {
        let policy = Policy {
            demote_privileged: true,
            ..Policy::default()
        };
        let p = resolve_file(&file("mod@x.com\nboss@x.com\n"), "f.csv", &site(), &policy);
        assert_eq!(p.counts.selected, 2);
        assert_eq!(
            p.rows[1].reason,
            "Admin: will be demoted to Registered first"
        );
        assert!(p.demote_privileged);
    }

    #[test]
    fn system_accounts() {
        assert!(is_system_account(&site()[7]));
        assert!(is_system_account(&user("0", &["x@x.com"])));
        let mut community = user("5", &[]);
        community.display_name = Some("COMMUNITY".into());
        assert!(is_system_account(&community));
        community.emails = vec!["community@people.org".into()];
        assert!(!is_system_account(&community));
        assert!(!is_system_account(&user("17", &[])));
        // Reached by email: the Community user with an email-less name is never matched, but an
        // ID "0" with an email is.
        let users = vec![user("0", &["root@x.com"])];
        let p = resolve_file(&file("root@x.com\n"), "f", &users, &Policy::default());
        assert_eq!(p.rows[0].outcome, PreviewOutcome::SystemAccount);
    }

    #[test]
    fn an_account_listed_twice_is_not_ambiguous() {
        let users = vec![user("1", &["a@x.com", "A@X.COM"]), user("1", &["a@x.com"])];
        let p = resolve_file(&file("a@x.com\n"), "f", &users, &Policy::default());
        assert_eq!(p.rows[0].outcome, PreviewOutcome::Selected);
    }

    #[test]
    fn large_files_against_large_sites_resolve_every_row() {
        // Correctness at size only: how fast is the benchmark's business, not a test's.
        let users: Vec<SiteUser> = (1..=50_000)
            .map(|i| user(&i.to_string(), &[&format!("u{i}@x.com")]))
            .collect();
        let text: String = (1..=50_000).map(|i| format!("U{i}@X.com\n")).collect();
        let p = resolve_file(&file(&text), "f", &users, &Policy::default());
        assert_eq!(p.counts.selected, 50_000);
        assert_eq!(p.rows.len(), 50_000);
        assert_eq!(p.rows[49_999].outcome, PreviewOutcome::Selected);
        let r = recheck(&p, &users, &Policy::default());
        assert_eq!(r.targets.len(), 50_000);
    }

    #[test]
    fn account_ids_match_exactly() {
        let p = resolve_file(
            &file("Account ID\n010\n10\n"),
            "f",
            &site(),
            &Policy::default(),
        );
        assert_eq!(p.rows[0].outcome, PreviewOutcome::NotFound);
        assert_eq!(p.rows[1].outcome, PreviewOutcome::Selected);
    }

    #[test]
    fn deactivated_users_are_checked_here_not_trusted_from_a_filter() {
        let users = vec![
            user("1", &["a@x.com"]),
            inactive(user("2", &["b@x.com"])),
            inactive(with_role(user("3", &["c@x.com"]), Role::Admin)),
            inactive(user("4", &["me@x.com"])),
            inactive(user("2", &["b@x.com"])),
        ];
        let policy = Policy {
            operator_email: Some("me@x.com".into()),
            ..Policy::default()
        };
        let p = select_deactivated(&users, &policy);
        use PreviewOutcome::*;
        assert_eq!(
            outcomes(&p),
            vec![
                (None, Selected, Some("2")),
                (None, Privileged, Some("3")),
                (None, Protected, Some("4")),
                (None, Duplicate, Some("2")),
            ]
        );
        assert_eq!(p.rows[0].input, "2");
        assert_eq!(p.source, PreviewSource::Deactivated);
    }

    #[test]
    fn picked_users() {
        let users = vec![inactive(user("1", &["a@x.com"])), user("2", &["b@x.com"])];
        let ids = vec!["1".to_string(), " 2 ".to_string(), "3".to_string()];
        let p = select_picked(&ids, &users, &Policy::default());
        use PreviewOutcome::*;
        assert_eq!(
            outcomes(&p),
            vec![
                (None, Selected, Some("1")),
                (None, Selected, Some("2")),
                (None, NotFound, None)
            ]
        );
        assert_eq!(p.rows[0].reason, "");
        assert_eq!(p.rows[1].reason, "active: this user is not deactivated");
        assert_eq!(p.source, PreviewSource::Picked);
    }

    fn messages(r: &Recheck) -> Vec<(&str, &str)> {
        r.changed
            .iter()
            .map(|c| (c.account_id.as_str(), c.message.as_str()))
            .collect()
    }

    #[test]
    fn recheck_keeps_unchanged_rows_and_reports_changes() {
        let users = vec![
            user("1", &["a@x.com"]),
            user("2", &["b@x.com"]),
            user("3", &["c@x.com"]),
            user("4", &["d@x.com"]),
            user("5", &["e@x.com"]),
            user("6", &["f@x.com"]),
            user("7", &["g@x.com"]),
        ];
        let policy = Policy::default();
        let p = resolve_file(
            &file("A@x.com\nb@x.com\nc@x.com\nd@x.com\ne@x.com\n6\ng@x.com\n"),
            "f",
            &users,
            &policy,
        );
        assert_eq!(p.counts.selected, 7);
        let mut fresh = users.clone();
        fresh[1].role = Role::Admin; // 2
        fresh.retain(|u| u.id != "3"); // 3 gone
        fresh.push(user("99", &["D@X.com"])); // 4 now shared
        fresh[3].emails = vec!["new@x.com".into()]; // 5 (index 3 after removal) lost its email
        fresh[5].emails = vec!["other@x.com".into()]; // 7 lost its email too
        let r = recheck(&p, &fresh, &policy);
        assert_eq!(
            r.targets,
            vec![
                RunTarget {
                    account_id: "1".into(),
                    email: Some("A@x.com".into()),
                    state: ItemState::Pending
                },
                RunTarget {
                    account_id: "6".into(),
                    email: Some("f@x.com".into()),
                    state: ItemState::Pending
                },
            ]
        );
        assert_eq!(
            messages(&r),
            vec![
                ("2", "now has role Admin"),
                ("3", "no longer on the site"),
                ("4", "email now shared with account 99"),
                ("5", "no longer has the email e@x.com"),
                ("7", "no longer has the email g@x.com"),
            ]
        );
        assert!(r
            .changed
            .iter()
            .all(|c| c.outcome == ItemOutcome::ChangedSincePreview && c.attempts == 0));
        assert_eq!(r.changed[0].email.as_deref(), Some("b@x.com"));
    }

    #[test]
    fn recheck_respects_demotion_protection_and_system_accounts() {
        let users = vec![
            with_role(user("1", &["a@x.com"]), Role::Moderator),
            user("2", &["b@x.com"]),
            user("3", &["c@x.com"]),
        ];
        let demote = Policy {
            demote_privileged: true,
            ..Policy::default()
        };
        let p = resolve_file(&file("a@x.com\nb@x.com\nc@x.com\n"), "f", &users, &demote);
        assert_eq!(p.counts.selected, 3);
        let mut fresh = users.clone();
        fresh[2].id = "0".into(); // (pretend) now a system account id: it is "gone" as 3
        fresh.push(SiteUser {
            id: "3".into(),
            user_name: Some("community".into()),
            ..SiteUser::default()
        });
        let now = Policy {
            demote_privileged: true,
            protected_emails: vec!["b@x.com".into()],
            ..Policy::default()
        };
        let r = recheck(&p, &fresh, &now);
        assert_eq!(r.targets.len(), 1);
        assert_eq!(r.targets[0].account_id, "1");
        assert_eq!(
            messages(&r),
            vec![
                ("2", "now protected: b@x.com is on the protected list"),
                ("3", "now looks like the site's system account"),
            ]
        );
        // Demotion switched off since the preview: the moderator is left alone.
        let r = recheck(&p, &users, &Policy::default());
        assert_eq!(messages(&r), vec![("1", "now has role Moderator")]);
    }

    #[test]
    fn recheck_of_deactivated_and_picked_sources() {
        let users = vec![inactive(user("1", &["a@x.com"])), inactive(user("2", &[]))];
        let policy = Policy::default();
        let p = select_deactivated(&users, &policy);
        let mut fresh = users.clone();
        fresh[0].active = true;
        let r = recheck(&p, &fresh, &policy);
        assert_eq!(messages(&r), vec![("1", "was re-activated")]);
        assert_eq!(r.changed[0].email.as_deref(), Some("a@x.com"));
        assert_eq!(
            r.targets,
            vec![RunTarget {
                account_id: "2".into(),
                email: None,
                state: ItemState::Pending
            }]
        );
        let picked = select_picked(&["1".into()], &users, &policy);
        assert_eq!(
            messages(&recheck(&picked, &fresh, &policy)),
            vec![("1", "was re-activated")]
        );
        // Picked while active: staying active is no change.
        let picked = select_picked(&["1".into()], &fresh, &policy);
        assert_eq!(recheck(&picked, &fresh, &policy).targets.len(), 1);
        // A file row does not care about the active flag.
        let p = resolve_file(&file("a@x.com\n"), "f", &users, &policy);
        assert_eq!(recheck(&p, &fresh, &policy).targets.len(), 1);
    }

    #[test]
    fn recheck_of_a_preview_without_selected_rows_is_empty() {
        let p = resolve_file(&file("nobody@x.com\n"), "f", &site(), &Policy::default());
        let r = recheck(&p, &site(), &Policy::default());
        assert!(r.targets.is_empty() && r.changed.is_empty());
    }
    fn choice(by: &str) -> Choice {
        Choice {
            account_id: String::new(),
            by: by.to_string(),
            at: "2026-12-07T12:00:00Z".to_string(),
        }
    }

    fn twins() -> Vec<SiteUser> {
        vec![
            user("12", &["bob@x.com"]),
            inactive(user("13", &["BOB@x.com"])),
            user("14", &["ann@x.com"]),
        ]
    }

    /// `text` resolved against [`twins`] under the default policy.
    fn resolve_twins(text: &str) -> Preview {
        resolve_file(&file(text), "f", &twins(), &Policy::default())
    }

    #[test]
    fn choosing_one_candidate_selects_exactly_that_account_and_undo_restores_the_row() {
        let p = resolve_twins("Email\nann@x.com\nbob@x.com\n");
        let row = &p.rows[1];
        assert_eq!(row.outcome, PreviewOutcome::Ambiguous);
        let nobody = |_: &str| None;
        let chosen =
            choose_candidate(row, " 13 ", nobody, &Policy::default(), choice("Olive")).unwrap();
        assert_eq!(chosen.outcome, PreviewOutcome::Selected);
        assert_eq!(chosen.account_id.as_deref(), Some("13"));
        assert_eq!(chosen.line, Some(3));
        assert_eq!(chosen.active, Some(false));
        assert_eq!(chosen.reason, "chosen by Olive");
        assert_eq!(chosen.chosen.as_ref().map(|c| c.by.as_str()), Some("Olive"));
        assert_eq!(chosen.candidates.len(), 2);
        assert_eq!(row_name(&chosen), "line 3 (bob@x.com)");
        // A second choice on the same row is refused until the first is undone.
        let again = choose_candidate(&chosen, "12", nobody, &Policy::default(), choice("Sam"));
        assert!(again
            .unwrap_err()
            .0
            .contains("was already chosen for line 3"));
        let undone = undo_choice(&chosen).unwrap();
        assert_eq!(undone, *row);
        assert!(undo_choice(row).is_err());
        // The run re-checks the chosen row: its known twin is no change, a new one is.
        let mut with_choice = p.clone();
        with_choice.rows[1] = chosen;
        let r = recheck(&with_choice, &twins(), &Policy::default());
        assert_eq!(r.targets.len(), 2, "{:?}", r.changed);
        assert_eq!(r.targets[1].account_id, "13");
        let mut fresh = twins();
        fresh.push(user("15", &["bob@x.com"]));
        let r = recheck(&with_choice, &fresh, &Policy::default());
        assert_eq!(
            messages(&r),
            vec![("13", "email now shared with account 15")]
        );
    }

    #[test]
    fn a_choice_is_refused_outside_the_candidates_and_under_the_usual_rules() {
        let p = resolve_twins("bob@x.com\nann@x.com\n");
        let row = &p.rows[0];
        let nobody = |_: &str| None;
        let refused = |id: &str, policy: &Policy| {
            choose_candidate(row, id, nobody, policy, choice("Olive"))
                .unwrap_err()
                .0
        };
        assert_eq!(
            refused("14", &Policy::default()),
            "Account 14 is not one of the accounts line 1 (bob@x.com) could mean; nothing was chosen."
        );
        assert!(refused("", &Policy::default()).contains("is not one of"));
        let mine = Policy {
            operator_email: Some("bob@x.com".into()),
            ..Policy::default()
        };
        assert_eq!(
            refused("12", &mine),
            "Account 12 cannot be chosen: this is your own account (bob@x.com)."
        );
        let elsewhere = choose_candidate(
            row,
            "12",
            |_| Some(Some(9)),
            &Policy::default(),
            choice("O"),
        );
        assert_eq!(
            elsewhere.unwrap_err().0,
            "Account 12 is already selected by line 9; nothing was chosen."
        );
        // Not ambiguous: nothing to choose.
        let plain = choose_candidate(&p.rows[1], "14", nobody, &Policy::default(), choice("O"));
        assert!(plain
            .unwrap_err()
            .0
            .starts_with("Line 2 (ann@x.com) is not ambiguous"));
        // A moderator among the candidates follows "demote first".
        let mut users = twins();
        users[0].role = Role::Moderator;
        let p = resolve_file(&file("bob@x.com\n"), "f", &users, &Policy::default());
        let row = &p.rows[0];
        assert!(
            choose_candidate(row, "12", nobody, &Policy::default(), choice("O"))
                .unwrap_err()
                .0
                .contains("Moderator accounts are skipped")
        );
        let demote = Policy {
            demote_privileged: true,
            ..Policy::default()
        };
        let chosen = choose_candidate(row, "12", nobody, &demote, choice("O")).unwrap();
        assert_eq!(
            chosen.reason,
            "chosen by O; Moderator: will be demoted to Registered first"
        );
    }
}
