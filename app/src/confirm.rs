//! The confirmation phrase an admin types before a run: built and checked by the same code in
//! the browser (to enable the button and say what differs) and on the server (which alone decides).

use crate::model::Action;

/// The phrase quoting the action and the count, e.g. `DELETE 37 USERS` or `DEACTIVATE 1 USER`.
pub fn confirmation_phrase(action: Action, count: usize) -> String {
    let noun = if count == 1 { "USER" } else { "USERS" };
    format!("{} {count} {noun}", action.verb())
}

/// The phrase of a "Deactivate now, delete after N days" run, naming both acts and the date:
/// `DEACTIVATE 12 USERS, DELETE ON 2027-01-06`.
pub fn undo_window_phrase(count: usize, delete_on: &str) -> String {
    format!(
        "{}, DELETE ON {delete_on}",
        confirmation_phrase(Action::DeactivateThenDelete, count)
    )
}

/// The words of a phrase, with surrounding space and runs of spaces dropped.
fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// True when `typed` is the phrase, word for word and in capitals. Only surrounding space and
/// runs of spaces are forgiven (copy-paste adds them); a lower-case phrase or another count is
/// not the phrase, because typing it exactly is what proves the admin read it.
pub fn phrase_matches(expected: &str, typed: &str) -> bool {
    let wanted = words(expected);
    !wanted.is_empty() && wanted == words(typed)
}

/// What differs between `typed` and the phrase, politely, in plain words; `None` when there is
/// nothing to say (it matches, nothing is typed yet, or the admin is still typing it and has not
/// tried to submit). Never a reason to accept: only [`phrase_matches`] decides.
pub fn phrase_problem(expected: &str, typed: &str, submitted: bool) -> Option<String> {
    if typed.trim().is_empty() {
        return submitted.then(|| format!("Type the phrase {expected} to confirm."));
    }
    if phrase_matches(expected, typed) {
        return None;
    }
    let wanted = words(expected);
    let given = words(typed);
    let still_typing = expected.trim_start().starts_with(typed.trim_start());
    if still_typing && !submitted {
        return None;
    }
    if wanted.len() == given.len()
        && wanted
            .iter()
            .zip(&given)
            .all(|(w, g)| w.eq_ignore_ascii_case(g))
    {
        return Some(format!("Type the words in capitals: {expected}."));
    }
    let count_wanted = wanted.iter().find(|w| is_number(w));
    let count_given = given.iter().find(|w| is_number(w));
    if let (Some(w), Some(g)) = (count_wanted, count_given) {
        if w != g {
            return Some(format!("The count is {w}, not {g}. Type {expected}."));
        }
    }
    if let (Some(w), Some(g)) = (wanted.first(), given.first()) {
        if !w.eq_ignore_ascii_case(g) {
            return Some(format!("The phrase starts with {w}. Type {expected}."));
        }
    }
    if still_typing {
        return Some(format!("The phrase is not complete yet. Type {expected}."));
    }
    Some(format!(
        "This is not the phrase yet. Type {expected} exactly."
    ))
}

fn is_number(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_digit())
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
        assert_eq!(
            undo_window_phrase(12, "2027-01-06"),
            "DEACTIVATE 12 USERS, DELETE ON 2027-01-06"
        );
        assert_eq!(
            undo_window_phrase(1, "2027-01-06"),
            "DEACTIVATE 1 USER, DELETE ON 2027-01-06"
        );
        let phrase = undo_window_phrase(12, "2027-01-06");
        assert!(phrase_matches(
            &phrase,
            "  DEACTIVATE 12 USERS,  DELETE ON 2027-01-06 "
        ));
        assert!(
            !phrase_matches(&phrase, "DEACTIVATE 12 USERS"),
            "the date is part of it"
        );
        assert!(!phrase_matches(
            &phrase,
            "DEACTIVATE 12 USERS, DELETE ON 2027-01-07"
        ));
        assert_eq!(
            phrase_problem(&phrase, "DEACTIVATE 11 USERS, DELETE ON 2027-01-06", true).as_deref(),
            Some("The count is 12, not 11. Type DEACTIVATE 12 USERS, DELETE ON 2027-01-06.")
        );
    }

    #[test]
    fn matching_forgives_spacing_only() {
        let p = confirmation_phrase(Action::Delete, 37);
        assert!(phrase_matches(&p, "DELETE 37 USERS"));
        assert!(phrase_matches(&p, "  DELETE  37 USERS \n"));
        assert!(!phrase_matches(&p, "delete 37 users"));
        assert!(!phrase_matches(&p, "Delete 37 Users"));
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

    #[test]
    fn problems_say_what_differs() {
        let p = "DELETE 12 USERS";
        assert_eq!(
            phrase_problem(p, "DELETE 11 USERS", false).as_deref(),
            Some("The count is 12, not 11. Type DELETE 12 USERS.")
        );
        assert_eq!(
            phrase_problem(p, "delete 12 users", false).as_deref(),
            Some("Type the words in capitals: DELETE 12 USERS.")
        );
        assert_eq!(
            phrase_problem(p, "DEACTIVATE 12 USERS", false).as_deref(),
            Some("The phrase starts with DELETE. Type DELETE 12 USERS.")
        );
        assert_eq!(
            phrase_problem(p, "DELETE 12 PEOPLE", false).as_deref(),
            Some("This is not the phrase yet. Type DELETE 12 USERS exactly.")
        );
        // A look-alike count is not a number, so it is not "the count is …".
        assert_eq!(
            phrase_problem(p, "DELETE １２ USERS", false).as_deref(),
            Some("This is not the phrase yet. Type DELETE 12 USERS exactly.")
        );
    }

    #[test]
    fn nothing_is_said_while_the_admin_is_still_typing_or_done() {
        let p = "DELETE 12 USERS";
        for typed in ["", "   ", "D", "DELETE", "DELETE 1", "DELETE 12 USER"] {
            assert_eq!(phrase_problem(p, typed, false), None, "{typed:?}");
        }
        assert_eq!(phrase_problem(p, "DELETE 12 USERS", false), None);
        assert_eq!(phrase_problem(p, " DELETE 12 USERS ", true), None);
        // Pressing Enter on a half-typed phrase says so instead of doing nothing.
        assert_eq!(
            phrase_problem(p, "DELETE 12", true).as_deref(),
            Some("The phrase is not complete yet. Type DELETE 12 USERS.")
        );
        assert_eq!(
            phrase_problem(p, "", true).as_deref(),
            Some("Type the phrase DELETE 12 USERS to confirm.")
        );
    }

    #[test]
    fn a_problem_never_goes_with_a_match() {
        let p = "DEACTIVATE 1 USER";
        for typed in [
            "DEACTIVATE 1 USER",
            "deactivate 1 user",
            "DEACTIVATE 2 USER",
            "DEACTIVATE 1",
            "",
            "DEACTIVATE 1 USERS",
        ] {
            for submitted in [false, true] {
                let matches = phrase_matches(p, typed);
                let problem = phrase_problem(p, typed, submitted);
                assert!(!(matches && problem.is_some()), "{typed:?}");
                if submitted {
                    assert_eq!(matches, problem.is_none(), "{typed:?}");
                }
            }
        }
    }
}
