//! Reading a SCIM User resource (RFC 7643 §4.1) as the sites really send it into a [`SiteUser`].

use model::deletion::{Role, SiteUser};
use serde_json::{Map, Value};

/// Reads one SCIM User resource. `None` when it has no usable `id` (nothing could be done to
/// such a user). Lenient about shapes seen in the wild: numeric ids, `"false"` strings,
/// emails with or without `primary`, missing keys.
pub fn parse_user(v: &Value) -> Option<SiteUser> {
    let obj = v.as_object()?;
    let id = text_or_number(obj.get("id")?)?;
    let name = obj.get("name").and_then(Value::as_object);
    let display_name = text(obj.get("displayName")).or_else(|| name.and_then(full_name));
    let (emails, primary_email) = parse_emails(obj.get("emails"));
    Some(SiteUser {
        id,
        external_id: obj.get("externalId").and_then(text_or_number),
        user_name: text(obj.get("userName")),
        display_name,
        emails,
        primary_email,
        active: parse_active(obj.get("active")),
        role: Role::from_user_type(text(obj.get("userType")).as_deref()),
        created: obj
            .get("meta")
            .and_then(Value::as_object)
            .and_then(|meta| text(meta.get("created"))),
    })
}

/// A non-empty trimmed string.
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn text_or_number(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        other => text(Some(other)),
    }
}

fn full_name(name: &Map<String, Value>) -> Option<String> {
    text(name.get("formatted")).or_else(|| {
        let parts: Vec<String> = ["givenName", "familyName"]
            .iter()
            .filter_map(|k| text(name.get(*k)))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

/// All email values in order, and the primary one (else the first). Entries may be objects
/// `{value, primary}` or bare strings; entries without a usable value are skipped.
fn parse_emails(v: Option<&Value>) -> (Vec<String>, Option<String>) {
    let Some(Value::Array(items)) = v else {
        return (Vec::new(), None);
    };
    let mut emails = Vec::new();
    let mut primary = None;
    for item in items {
        let (value, is_primary) = match item {
            Value::Object(o) => (text(o.get("value")), o.get("primary").is_some_and(truthy)),
            other => (text(Some(other)), false),
        };
        if let Some(value) = value {
            if is_primary && primary.is_none() {
                primary = Some(value.clone());
            }
            emails.push(value);
        }
    }
    let primary = primary.or_else(|| emails.first().cloned());
    (emails, primary)
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// `active` defaults to true: only an explicit false (boolean, `"false"`, 0) marks a user as
/// deactivated, so an unreadable value never lands a user in the "deactivated" list.
fn parse_active(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.trim().eq_ignore_ascii_case("false"),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_full_stack_user() {
        let v = json!({
            "id": "1234", "externalId": "ext-9", "userName": "Jane Doe",
            "displayName": "Jane D.", "name": {"givenName": "Jane", "familyName": "Doe"},
            "emails": [{"value": "jane@old.example"}, {"value": "Jane@Acme.example", "primary": true}],
            "active": false, "userType": "Moderator",
            "meta": {"created": "2021-03-04T05:06:07Z", "location": "https://x/users/1234"}
        });
        let u = parse_user(&v).unwrap();
        let expected = SiteUser {
            id: "1234".into(),
            external_id: Some("ext-9".into()),
            user_name: Some("Jane Doe".into()),
            display_name: Some("Jane D.".into()),
            emails: vec!["jane@old.example".into(), "Jane@Acme.example".into()],
            primary_email: Some("Jane@Acme.example".into()),
            active: false,
            role: Role::Moderator,
            created: Some("2021-03-04T05:06:07Z".into()),
        };
        assert_eq!(u, expected);
    }

    #[test]
    fn minimal_user_gets_safe_defaults() {
        let u = parse_user(&json!({"id": 42})).unwrap();
        assert_eq!(u.id, "42");
        assert!(u.active, "absent active means active");
        assert_eq!(u.role, Role::Registered);
        assert!(u.emails.is_empty());
        assert_eq!(u.primary_email, None);
        assert_eq!(u.display_name, None);
        assert_eq!(u.external_id, None);
    }

    #[test]
    fn users_without_a_usable_id_are_rejected() {
        for v in [
            json!({}),
            json!({"id": null}),
            json!({"id": ""}),
            json!({"id": "   "}),
            json!({"id": true}),
            json!({"id": ["1"]}),
            json!("1"),
            json!(null),
        ] {
            assert_eq!(parse_user(&v), None, "{v}");
        }
        assert_eq!(parse_user(&json!({"id": " 7 "})).unwrap().id, "7");
    }

    #[test]
    fn display_name_falls_back_to_the_name_parts() {
        let u = |v: Value| parse_user(&v).unwrap().display_name;
        assert_eq!(
            u(json!({"id":"1","name":{"givenName":"Ann","familyName":"Lee"}})).as_deref(),
            Some("Ann Lee")
        );
        assert_eq!(
            u(json!({"id":"1","name":{"familyName":"Lee"}})).as_deref(),
            Some("Lee")
        );
        assert_eq!(
            u(json!({"id":"1","displayName":" ","name":{"formatted":"Dr Ann Lee","givenName":"Ann"}})).as_deref(),
            Some("Dr Ann Lee")
        );
        assert_eq!(u(json!({"id":"1","name":{}})), None);
        assert_eq!(u(json!({"id":"1","name":"Ann"})), None);
    }

    #[test]
    fn email_shapes() {
        let emails = |v: Value| {
            let u = parse_user(&json!({"id": "1", "emails": v})).unwrap();
            (u.emails, u.primary_email)
        };
        assert_eq!(emails(json!([])), (vec![], None));
        assert_eq!(emails(json!(null)), (vec![], None));
        assert_eq!(emails(json!("a@x.example")), (vec![], None));
        assert_eq!(
            emails(json!([{"value": "a@x"}, {"value": "b@x"}])),
            (vec!["a@x".into(), "b@x".into()], Some("a@x".into()))
        );
        assert_eq!(
            emails(
                json!([{"value": "a@x", "primary": false}, {"value": "b@x", "primary": "true"}])
            ),
            (vec!["a@x".into(), "b@x".into()], Some("b@x".into()))
        );
        // Two primaries: the first wins. Junk entries are skipped.
        assert_eq!(
            emails(
                json!([{"primary": true}, {"value": 5}, "c@x", {"value": " d@x ", "primary": true}, {"value": "e@x", "primary": true}])
            ),
            (
                vec!["c@x".into(), "d@x".into(), "e@x".into()],
                Some("d@x".into())
            )
        );
    }

    #[test]
    fn active_shapes() {
        let active = |v: Value| parse_user(&json!({"id": "1", "active": v})).unwrap().active;
        assert!(!active(json!(false)));
        assert!(!active(json!("false")));
        assert!(!active(json!(" FALSE ")));
        assert!(!active(json!(0)));
        assert!(active(json!(true)));
        assert!(active(json!("True")));
        assert!(active(json!(null)));
        assert!(active(json!("maybe")));
        assert!(active(json!(1)));
        assert!(active(json!({})));
    }

    #[test]
    fn user_type_becomes_a_role() {
        let role = |v: Value| parse_user(&json!({"id": "1", "userType": v})).unwrap().role;
        assert_eq!(role(json!("Admin")), Role::Admin);
        assert_eq!(role(json!("moderator")), Role::Moderator);
        assert_eq!(role(json!("Registered")), Role::Registered);
        assert_eq!(role(json!("Employee")), Role::Other("Employee".into()));
        assert_eq!(role(json!(3)), Role::Registered);
    }
}
