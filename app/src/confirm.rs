//! The confirmation phrase an admin types before a run: built and checked by the same code in
//! the browser (to enable the button) and on the server (which alone decides).

use crate::model::Action;

/// The phrase quoting the action and the count, e.g. `DELETE 37 USERS` or `DEACTIVATE 1 USER`.
pub fn confirmation_phrase(action: Action, count: usize) -> String {
    let noun = if count == 1 { "USER" } else { "USERS" };
    format!("{} {count} {noun}", action.verb())
}

/// True when `typed` is the phrase. Case and runs of spaces are forgiven (the count and the
/// verb are what carry the meaning); anything else, including another count, is not.
pub fn phrase_matches(expected: &str, typed: &str) -> bool {
    let normalise = |s: &str| {
        s.split_whitespace()
            .map(str::to_uppercase)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let wanted = normalise(expected);
    !wanted.is_empty() && wanted == normalise(typed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_quotes_action_and_count() {
        assert_eq!(confirmation_phrase(Action::Delete, 37), "DELETE 37 USERS");
        assert_eq!(confirmation_phrase(Action::Delete, 1), "DELETE 1 USER");
        assert_eq!(
            confirmation_phrase(Action::Deactivate, 2),
            "DEACTIVATE 2 USERS"
        );
        assert_eq!(confirmation_phrase(Action::Delete, 0), "DELETE 0 USERS");
    }

    #[test]
    fn matching_forgives_case_and_spacing_only() {
        let p = confirmation_phrase(Action::Delete, 37);
        assert!(phrase_matches(&p, "DELETE 37 USERS"));
        assert!(phrase_matches(&p, "  delete  37 users \n"));
        assert!(!phrase_matches(&p, "DELETE 38 USERS"));
        assert!(!phrase_matches(&p, "DELETE 37 USER"));
        assert!(!phrase_matches(&p, "DEACTIVATE 37 USERS"));
        assert!(!phrase_matches(&p, "DELETE37USERS"));
        assert!(!phrase_matches(&p, ""));
        assert!(!phrase_matches("", ""));
        // Look-alike digits (Arabic-Indic, full-width) are not the count.
        assert!(!phrase_matches(&p, "DELETE ٣٧ USERS"));
        assert!(!phrase_matches(&p, "DELETE ３７ USERS"));
    }
}
