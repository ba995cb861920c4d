//! The audit trail as the console shows it: an entry's details in words. The plain data
//! (actions, entries, filters) is `model::audit`, re-exported here.

pub use ::model::audit::*;
use ::model::deletion::{Action, ItemOutcome, PreviewOutcome};
use ::model::Named;

/// An entry's details (its JSON text) as the Audit page reads them to an admin: one
/// "Label: value" line per field, in the stored order. Empty fields (null, an empty list)
/// and zero counts are left out; yes/no for true/false; a group (a run's counts) on one line.
/// Text that is not a JSON object is shown as it is: the page never hides what was stored.
/// The CSV keeps the JSON itself, for tools and for Stack support.
pub fn details_in_words(details: &str) -> Vec<String> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(details) else {
        return match details.trim() {
            "" => Vec::new(),
            text => vec![text.to_string()],
        };
    };
    // The counts use the words of the screens: "will be deleted" (the preview's action), not
    // the stored names ("Selected", "Privileged").
    let action = fields
        .get("action")
        .and_then(|a| serde_json::from_value::<Action>(a.clone()).ok())
        .unwrap_or_default();
    fields
        .iter()
        .filter_map(|(key, value)| {
            let words = match (key.as_str(), value) {
                ("counts", serde_json::Value::Object(counts)) => counts_in_words(counts, action),
                _ => value_in_words(value)?,
            };
            Some(format!("{}: {}", label(key), words))
        })
        .collect()
}

/// A run's outcome as the Run page's counts say it: what the site refused is "failed: …",
/// what was left alone "skipped: …" (the bar's words first).
fn run_count_words(outcome: ItemOutcome) -> String {
    match outcome {
        o if o.is_success() => o.label().to_string(),
        ItemOutcome::Failed | ItemOutcome::NotAttempted => outcome.label().to_string(),
        ItemOutcome::ChangedSincePreview => format!("skipped: {}", outcome.label()),
        o => format!("failed: {}", o.label()),
    }
}

/// A preview's or a run's counts: "3 will be deleted, 1 moderator/admin", in the words the
/// Preview and Run pages use for the same rows. Zero counts are left out.
fn counts_in_words(counts: &serde_json::Map<String, serde_json::Value>, action: Action) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| n.as_i64() != Some(0))
        .filter_map(|(key, n)| {
            let n = value_in_words(n)?;
            let words = match (
                PreviewOutcome::from_key(key),
                serde_json::from_value::<ItemOutcome>(serde_json::Value::String(key.clone())),
            ) {
                (Some(outcome), _) => outcome.label_for(action).to_string(),
                (None, Ok(outcome)) => run_count_words(outcome),
                (None, Err(_)) => label(key).to_lowercase(),
            };
            Some(format!("{n} {words}"))
        })
        .collect();
    match parts.is_empty() {
        true => "none".to_string(),
        false => parts.join(", "),
    }
}

/// A field's name in words: `site_url` → "Site", `token_replaced` → "Token replaced",
/// `NotFound` (an outcome) → "Not found".
fn label(key: &str) -> String {
    match key {
        "site_url" => return "Site".to_string(),
        "scim_base_url" => return "SCIM base URL".to_string(),
        "demote_privileged" => return "Demote moderators and admins first".to_string(),
        // One name for the email Connect protects, on every screen (docs/glossary.md).
        "operator_email" => return "Protected email".to_string(),
        "operator_email_changed" => return "Protected email changed".to_string(),
        "token_kept_for_new_site" => return "Token kept for the new address".to_string(),
        _ => {}
    }
    let mut words = String::new();
    for (i, c) in key.chars().enumerate() {
        match c {
            '_' | '-' => words.push(' '),
            c if c.is_uppercase() && i > 0 && !words.ends_with(' ') => {
                words.push(' ');
                words.extend(c.to_lowercase());
            }
            c if i == 0 => words.extend(c.to_uppercase()),
            c => words.extend(c.to_lowercase()),
        }
    }
    words
}

/// A value in words, or None when there is nothing to say.
fn value_in_words(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::Null => None,
        Value::Bool(true) => Some("yes".to_string()),
        Value::Bool(false) => Some("no".to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().filter_map(value_in_words).collect();
            (!items.is_empty()).then(|| items.join(", "))
        }
        Value::Object(group) => {
            let parts: Vec<String> = group
                .iter()
                .filter(|(_, v)| v.as_i64() != Some(0))
                .filter_map(|(k, v)| Some(format!("{} {}", label(k), value_in_words(v)?)))
                .collect();
            Some(match parts.is_empty() {
                true => "none".to_string(),
                false => parts.join(", "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_read_as_words() {
        // A run's end, as the service writes it.
        let ended = r#"{"counts":{"Deleted":2,"NotFound":0,"ServerError":1},"done":3,"reason":null,"state":"finished","users":3}"#;
        assert_eq!(
            details_in_words(ended),
            [
                "Counts: 2 deleted, 1 server error",
                "Done: 3",
                "State: finished",
                "Users: 3"
            ]
        );
        let saved = r#"{"scim_base_url":"https://a.example/api/scim/v2","site_changed":true,"site_url":"https://a.example","token_replaced":false}"#;
        assert_eq!(
            details_in_words(saved),
            [
                "SCIM base URL: https://a.example/api/scim/v2",
                "Site changed: yes",
                "Site: https://a.example",
                "Token replaced: no"
            ]
        );
        // Nothing to say, empty groups, lists.
        assert_eq!(details_in_words("{}"), Vec::<String>::new());
        assert_eq!(
            details_in_words(r#"{"counts":{"Deleted":0},"emails":[]}"#),
            ["Counts: none"]
        );
        // A preview's counts, in the Preview page's words for its action.
        let made = r#"{"action":"Deactivate","counts":{"selected":3,"not_found":0,"privileged":1},"rows":4}"#;
        assert_eq!(
            details_in_words(made),
            [
                "Action: Deactivate",
                "Counts: 1 moderator/admin, 3 will be deactivated",
                "Rows: 4"
            ]
        );
        let ended = r#"{"counts":{"CommunityCreator":1,"Deleted":5}}"#;
        assert_eq!(
            details_in_words(ended),
            ["Counts: 1 failed: community creator, 5 deleted"]
        );
        assert_eq!(
            details_in_words(r#"{"operator_email_changed":true}"#),
            ["Protected email changed: yes"]
        );
        assert_eq!(
            details_in_words(r#"{"roles":["owner",null,"viewer"]}"#),
            ["Roles: owner, viewer"]
        );
        // What is not a JSON object is shown as stored, never dropped.
        assert_eq!(details_in_words("not json {"), ["not json {"]);
        assert_eq!(details_in_words("[1,2]"), ["[1,2]"]);
        assert_eq!(details_in_words("  "), Vec::<String>::new());
    }

    #[test]
    fn field_names_become_words() {
        assert_eq!(label("token_replaced"), "Token replaced");
        assert_eq!(label("NotFound"), "Not found");
        assert_eq!(label("not_found"), "Not found");
        assert_eq!(label("site_url"), "Site");
        assert_eq!(label("x"), "X");
        assert_eq!(label(""), "");
        assert_eq!(label("ÉtéLong"), "Été long");
    }
}
