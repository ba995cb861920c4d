//! What a notification says: one sentence in the admin's words and the console page it points
//! at, made from the event's audit entry (counts, names and ids; never a token, a password, a
//! link code or a list of users). Pure, so every event's words are tested here.

use model::audit::AuditAction;
use model::Named;
use serde_json::Value;

/// A notification as people read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// A short title ("Approval requested").
    pub title: String,
    /// One or two sentences saying what happened.
    pub text: String,
    /// The console's page about it, when the console's public address is known.
    pub link: Option<String>,
}

/// The words for `event` (an audit action's key or "test") by `actor` about `target`, with
/// the entry's `details`; `public_url` is the console's address without a trailing slash.
pub fn message(
    event: &str,
    actor: &str,
    target: &str,
    details: &Value,
    team: &str,
    public_url: Option<&str>,
) -> Message {
    let text_of = |key: &str| details.get(key).and_then(Value::as_str).unwrap_or("");
    let number = |key: &str| details.get(key).and_then(Value::as_u64);
    let page = |path: &str| {
        public_url
            .filter(|_| !target.is_empty())
            .map(|base| format!("{base}{path}{}", encode(target)))
    };
    let (title, text, link) = match AuditAction::from_key(event) {
        Some(AuditAction::ApprovalRequested) => (
            "Approval requested",
            format!(
                "{actor} asks for a second operator's approval to {} in team \"{team}\".",
                users_phrase(text_of("action"), number("users"))
            ),
            page("/preview?id="),
        ),
        Some(AuditAction::ApprovalGiven) => (
            "Approved and started",
            format!(
                "{actor} approved {}'s run in team \"{team}\"; it has started.",
                non_empty(text_of("requested_by"), "an operator")
            ),
            page("/run?id="),
        ),
        Some(AuditAction::ApprovalDeclined) => (
            "Approval declined",
            format!(
                "{actor} declined the run in team \"{team}\". Their reason: {}",
                non_empty(text_of("reason"), "none given")
            ),
            page("/preview?id="),
        ),
        Some(AuditAction::RunEnded) => (
            run_end_title(text_of("state")),
            run_end_text(details, team),
            page("/run?id="),
        ),
        Some(AuditAction::InvitationAccepted) => (
            "Invitation accepted",
            format!(
                "{actor} accepted an invitation and joined team \"{team}\" as {}.",
                non_empty(text_of("role"), "a member")
            ),
            public_url.map(|base| format!("{base}/team")),
        ),
        Some(AuditAction::DeletionPrepared) => (
            "Deletion prepared",
            format!(
                "The retention policy of team \"{team}\" prepared a preview to {} deactivated for at least {} days. Nobody is deleted until a person confirms it.",
                users_phrase("delete", number("users")),
                number("min_days").unwrap_or(0)
            ),
            page("/preview?id="),
        ),
        Some(AuditAction::DeletionReminder) => (
            "Deletion coming",
            format!(
                "In {} (on {}) Offboard deletes {} deactivated by a run in team \"{team}\", unless they are restored on the run's page.",
                plural(number("days").unwrap_or(0), "day"),
                non_empty(text_of("delete_on"), "the date"),
                plural(number("users").unwrap_or(0), "user")
            ),
            page("/run?id="),
        ),
        Some(AuditAction::DeletionCancelled) => (
            "Deletion cancelled",
            format!(
                "{actor} restored everyone and cancelled the deletion of {} in team \"{team}\".",
                non_empty(text_of("delete_on"), "a run's users")
            ),
            page("/run?id="),
        ),
        Some(AuditAction::DeletionDue) => (
            "Deletion date reached",
            format!(
                "The deletion of {} in team \"{team}\": {} {}; {} restored — not deleted; {} changed since — not deleted.",
                non_empty(text_of("delete_on"), "a run's users"),
                plural(number("deleted").unwrap_or(0), "user"),
                if details.get("asked").and_then(Value::as_bool) == Some(true) {
                    "wait in a preview for a person to confirm"
                } else {
                    "handed to a deletion run"
                },
                number("restored").unwrap_or(0),
                number("changed").unwrap_or(0)
            ),
            page("/run?id="),
        ),
        _ => (
            "Test message",
            format!("A test message from Offboard for team \"{team}\": this webhook works."),
            public_url.map(|base| format!("{base}/team")),
        ),
    };
    Message {
        title: title.to_string(),
        text,
        link,
    }
}

/// "1 day", "3 days".
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// "delete 12 users", "deactivate 1 user".
fn users_phrase(action: &str, users: Option<u64>) -> String {
    let verb = match action.to_lowercase().as_str() {
        "" => "delete".to_string(),
        "deactivate_then_delete" | "deactivatethendelete" => {
            "deactivate now and later delete".to_string()
        }
        other => other.to_string(),
    };
    match users {
        Some(1) => format!("{verb} 1 user"),
        Some(n) => format!("{verb} {n} users"),
        None => format!("{verb} users"),
    }
}

fn run_end_title(state: &str) -> &'static str {
    match state {
        "finished" => "Run finished",
        "cancelled" => "Run cancelled",
        "stopped" => "Run stopped",
        _ => "Run ended",
    }
}

/// "The run in team \"Alpha\" finished: 12 of 12 users processed (11 deleted, 1 failed)."
fn run_end_text(details: &Value, team: &str) -> String {
    let state = details
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("ended");
    let users = details.get("users").and_then(Value::as_u64).unwrap_or(0);
    let done = details.get("done").and_then(Value::as_u64).unwrap_or(0);
    let mut counts: Vec<String> = details
        .get("counts")
        .and_then(Value::as_object)
        .map(|counts| {
            counts
                .iter()
                .filter_map(|(outcome, n)| Some((outcome, n.as_u64()?)))
                .filter(|(_, n)| *n > 0)
                .map(|(outcome, n)| format!("{n} {}", spoken(outcome)))
                .collect()
        })
        .unwrap_or_default();
    counts.sort();
    let counts = if counts.is_empty() {
        String::new()
    } else {
        format!(" ({})", counts.join(", "))
    };
    let reason = details
        .get("reason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    format!(
        "The run in team \"{team}\" {state}: {done} of {users} users processed{counts}.{reason}"
    )
}

/// An outcome's stored name as words: "AlreadyGone" or "already_gone" → "already gone".
fn spoken(name: &str) -> String {
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if c == '_' {
            words.push(' ');
        } else if c.is_uppercase() {
            if i > 0 {
                words.push(' ');
            }
            words.extend(c.to_lowercase());
        } else {
            words.push(c);
        }
    }
    words
}

fn non_empty<'a>(text: &'a str, otherwise: &'a str) -> &'a str {
    if text.trim().is_empty() {
        otherwise
    } else {
        text
    }
}

/// Percent-encodes an id for a query string (ids are UUIDs, but nothing is assumed).
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: Option<&str> = Some("https://offboard.example.com");

    #[test]
    fn each_event_says_who_did_what_and_links_to_its_page() {
        let cases = [
            (
                "approval_requested",
                json!({"action": "delete", "users": 12, "phrase": "DELETE 12 USERS"}),
                "Approval requested",
                "Carol <carol@x.io> asks for a second operator's approval to delete 12 users in team \"Alpha\".",
                Some("https://offboard.example.com/preview?id=p-1"),
            ),
            (
                "approval_given",
                json!({"requested_by": "Carol <carol@x.io>", "approved_by": "Olive"}),
                "Approved and started",
                "Carol <carol@x.io> approved Carol <carol@x.io>'s run in team \"Alpha\"; it has started.",
                Some("https://offboard.example.com/run?id=p-1"),
            ),
            (
                "approval_declined",
                json!({"reason": "Wrong list"}),
                "Approval declined",
                "Carol <carol@x.io> declined the run in team \"Alpha\". Their reason: Wrong list",
                Some("https://offboard.example.com/preview?id=p-1"),
            ),
            (
                "run_ended",
                json!({"state": "finished", "users": 12, "done": 12,
                       "counts": {"Deleted": 11, "Failed": 1, "NotFound": 0, "AlreadyGone": 2}}),
                "Run finished",
                "The run in team \"Alpha\" finished: 12 of 12 users processed (1 failed, 11 deleted, 2 already gone).",
                Some("https://offboard.example.com/run?id=p-1"),
            ),
            (
                "invitation_accepted",
                json!({"email": "carol@x.io", "role": "operator"}),
                "Invitation accepted",
                "Carol <carol@x.io> accepted an invitation and joined team \"Alpha\" as operator.",
                Some("https://offboard.example.com/team"),
            ),
            (
                "deletion_prepared",
                json!({"users": 12, "min_days": 30}),
                "Deletion prepared",
                "The retention policy of team \"Alpha\" prepared a preview to delete 12 users deactivated for at least 30 days. Nobody is deleted until a person confirms it.",
                Some("https://offboard.example.com/preview?id=p-1"),
            ),
            (
                "deletion_reminder",
                json!({"days": 3, "users": 2, "delete_on": "2027-01-06"}),
                "Deletion coming",
                "In 3 days (on 2027-01-06) Offboard deletes 2 users deactivated by a run in team \"Alpha\", unless they are restored on the run's page.",
                Some("https://offboard.example.com/run?id=p-1"),
            ),
            (
                "deletion_cancelled",
                json!({"delete_on": "2027-01-06", "users": 2}),
                "Deletion cancelled",
                "Carol <carol@x.io> restored everyone and cancelled the deletion of 2027-01-06 in team \"Alpha\".",
                Some("https://offboard.example.com/run?id=p-1"),
            ),
            (
                "deletion_due",
                json!({"delete_on": "2027-01-06", "deleted": 1, "restored": 1, "changed": 0}),
                "Deletion date reached",
                "The deletion of 2027-01-06 in team \"Alpha\": 1 user handed to a deletion run; 1 restored — not deleted; 0 changed since — not deleted.",
                Some("https://offboard.example.com/run?id=p-1"),
            ),
            (
                "test",
                json!({}),
                "Test message",
                "A test message from Offboard for team \"Alpha\": this webhook works.",
                Some("https://offboard.example.com/team"),
            ),
        ];
        for (event, details, title, text, link) in cases {
            let m = message(event, "Carol <carol@x.io>", "p-1", &details, "Alpha", BASE);
            assert_eq!(m.title, title, "{event}");
            assert_eq!(m.text, text, "{event}");
            assert_eq!(m.link.as_deref(), link, "{event}");
        }
    }

    #[test]
    fn without_a_public_address_there_is_no_link() {
        let m = message("run_ended", "Offboard", "j-1", &json!({}), "Alpha", None);
        assert_eq!(m.link, None);
        assert_eq!(
            m.text,
            "The run in team \"Alpha\" ended: 0 of 0 users processed."
        );
    }

    #[test]
    fn missing_or_odd_details_still_make_a_sentence() {
        let m = message(
            "approval_declined",
            "Olive",
            "",
            &json!({"reason": "   "}),
            "Alpha",
            BASE,
        );
        assert_eq!(
            m.text,
            "Olive declined the run in team \"Alpha\". Their reason: none given"
        );
        assert_eq!(m.link, None, "no target, no page");
        let m = message(
            "approval_requested",
            "Olive",
            "p",
            &json!({"action": "Deactivate", "users": 1}),
            "Alpha",
            BASE,
        );
        assert!(m.text.contains("to deactivate 1 user in"), "{}", m.text);
    }

    #[test]
    fn a_stopped_run_gives_its_reason_and_an_id_is_encoded() {
        let m = message(
            "run_ended",
            "Offboard",
            "a b&c",
            &json!({"state": "stopped", "users": 3, "done": 1,
                    "reason": "The site refused the token."}),
            "Alpha",
            BASE,
        );
        assert_eq!(m.title, "Run stopped");
        assert!(m
            .text
            .ends_with("1 of 3 users processed. The site refused the token."));
        assert_eq!(
            m.link.as_deref(),
            Some("https://offboard.example.com/run?id=a+b%26c")
        );
    }
}
