//! A value that must never be printed: a secret (a token, a key) or bulky personal data. Its
//! `Debug` says `<hidden>`, so a struct holding one can derive `Debug` safely; the value itself
//! is read only with [`Hidden::expose`]. On the wire it is the plain value (a form must carry
//! the token the admin typed).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hidden<T>(T);

impl<T> Hidden<T> {
    pub fn new(value: T) -> Hidden<T> {
        Hidden(value)
    }

    /// The value itself: only where it is used (a header, encryption, the database).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Hidden<T> {
    fn from(value: T) -> Hidden<T> {
        Hidden(value)
    }
}

impl<T> fmt::Debug for Hidden<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_value_never_prints_but_travels_whole() {
        #[derive(Debug, Serialize, Deserialize)]
        struct Form {
            site: String,
            token: Option<Hidden<String>>,
        }
        let form = Form {
            site: "acme".into(),
            token: Some(Hidden::new("s3cret-token".into())),
        };
        let printed = format!("{form:?} {form:#?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("<hidden>") && printed.contains("acme"));
        let json = serde_json::to_string(&form).unwrap();
        assert_eq!(json, r#"{"site":"acme","token":"s3cret-token"}"#);
        let back: Form = serde_json::from_str(&json).unwrap();
        assert_eq!(back.token.unwrap().expose(), "s3cret-token");
    }
}
