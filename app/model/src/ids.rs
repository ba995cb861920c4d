//! The ids Offboard hands around, one type each, so a job id can never be passed where a
//! preview id (or a team) is expected. On the wire each is its plain value.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares a number id: a row the database numbered (a team, an account).
macro_rules! number_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        pub struct $name(i64);

        impl $name {
            pub const fn new(id: i64) -> $name {
                $name(id)
            }

            /// The number stored in the database.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

number_id!(
    /// A team: every record (connection, preview, run, audit entry) belongs to exactly one.
    TeamId
);
number_id!(
    /// A person who can sign in.
    AccountId
);

impl TeamId {
    /// The team the first database holds ("Default team"): records made before teams
    /// existed belong to it, and the first owner is its owner.
    pub const BUILT_IN: TeamId = TeamId(1);
}

/// Declares a text id: a UUID the console made, or an id read from an address or a form.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        // Read through `new`, so an id from a form or an address is trimmed; written as the
        // plain text (a newtype is its inner value in JSON).
        #[serde(from = "String")]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        pub struct $name(String);

        impl $name {
            /// Trimmed: an id pasted from an address or a form carries no spaces.
            pub fn new(id: impl Into<String>) -> $name {
                let id = id.into();
                match id.trim() {
                    trimmed if trimmed.len() == id.len() => $name(id),
                    trimmed => $name(trimmed.to_string()),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> $name {
                $name::new(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> $name {
                $name::new(id)
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

text_id!(
    /// A preview the admin made (a UUID).
    PreviewId
);
text_id!(
    /// A run started from a confirmed preview (a UUID).
    JobId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed_and_travel_as_plain_values() {
        let id = JobId::new("  5f0c-11 \n");
        assert_eq!(id.as_str(), "5f0c-11");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"5f0c-11\"");
        let back: PreviewId = serde_json::from_str("\" abc \"").unwrap();
        assert_eq!(back, PreviewId::new("abc"));
        assert_eq!(serde_json::to_string(&TeamId::BUILT_IN).unwrap(), "1");
        assert_eq!(TeamId::new(7).to_string(), "7");
    }
}
