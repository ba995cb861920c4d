//! The fault server's users: deterministic generation, loading from JSON, filters and edits.
//!
//! Users are kept as raw SCIM JSON objects so tests can load exactly the awkward shapes real
//! sites return (no `emails` key, no primary flag, shared addresses). Two extra keys, only read
//! on load and never served, mark the accounts Stack refuses to delete:
//! `"systemAccount": true` (DELETE answers 400) and `"communityCreator": true` (DELETE answers
//! 500 with the `FK_CommunityMemberships_CreationUser` message).

use serde_json::{json, Map, Value};

/// The built-in "Community" account every Stack site has. Its account ID is the first one a site
/// hands out; DELETE on it answers 400 "You cannot delete or destroy System Accounts.".
pub const SYSTEM_ACCOUNT_ID: &str = "1";

/// Generated user `i` (1-based) has account ID `GENERATED_ID_BASE + i`, so user 1 is "1001".
pub const GENERATED_ID_BASE: u64 = 1000;

const SYSTEM_ACCOUNT_MARKER: &str = "systemAccount";
const COMMUNITY_CREATOR_MARKER: &str = "communityCreator";

/// One account on the simulated site.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredUser {
    pub resource: Map<String, Value>,
    pub system_account: bool,
    pub community_creator: bool,
}

impl StoredUser {
    pub fn id(&self) -> &str {
        self.resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Moderators and Admins carry `userType`; Stack refuses to delete them until demoted.
    pub fn is_privileged(&self) -> bool {
        self.resource
            .get("userType")
            .and_then(Value::as_str)
            .is_some_and(|role| {
                role.eq_ignore_ascii_case("moderator") || role.eq_ignore_ascii_case("admin")
            })
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.resource.clone())
    }

    fn email_values(&self) -> impl Iterator<Item = &str> {
        self.resource
            .get("emails")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|email| email.get("value").and_then(Value::as_str))
    }
}

/// The site's users before any test touches them: the system account first, then `count`
/// generated users. See the crate documentation in `main.rs` for the exact shape.
pub fn generate(count: u64, deactivated_every: u64) -> Vec<StoredUser> {
    let mut users = vec![system_account()];
    users.extend((1..=count).map(|i| generated_user(i, deactivated_every)));
    users
}

fn system_account() -> StoredUser {
    let mut resource = Map::new();
    resource.insert("schemas".into(), json!([USER_SCHEMA]));
    resource.insert("id".into(), json!(SYSTEM_ACCOUNT_ID));
    resource.insert("userName".into(), json!("Community"));
    resource.insert("displayName".into(), json!("Community"));
    resource.insert("active".into(), json!(true));
    resource.insert("meta".into(), meta());
    StoredUser {
        resource,
        system_account: true,
        community_creator: false,
    }
}

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn meta() -> Value {
    json!({"resourceType": "User", "created": "2021-03-01T09:00:00Z"})
}

fn generated_user(i: u64, deactivated_every: u64) -> StoredUser {
    let id = (GENERATED_ID_BASE + i).to_string();
    let mut emails = vec![json!({"value": format!("user{i}@example.com"), "primary": true})];
    if i % 10 == 5 {
        emails.push(json!({"value": format!("user{i}.alt@example.org"), "primary": false}));
    }
    if i % 100 == 99 {
        // Shares user (i-1)'s address: RFC 7643 allows it and admins' CSVs hit it.
        emails.push(json!({"value": format!("user{}@example.com", i - 1), "primary": false}));
    }
    let mut resource = Map::new();
    resource.insert("schemas".into(), json!([USER_SCHEMA]));
    resource.insert("id".into(), json!(id));
    resource.insert("externalId".into(), json!(format!("ext-{i}")));
    resource.insert("userName".into(), json!(format!("user{i}")));
    resource.insert("displayName".into(), json!(format!("User {i}")));
    resource.insert(
        "name".into(),
        json!({"givenName": "User", "familyName": i.to_string()}),
    );
    resource.insert("emails".into(), Value::Array(emails));
    let deactivated = deactivated_every > 0 && i.is_multiple_of(deactivated_every);
    resource.insert("active".into(), json!(!deactivated));
    match i % 50 {
        7 => {
            resource.insert("userType".into(), json!("Moderator"));
        }
        17 => {
            resource.insert("userType".into(), json!("Admin"));
        }
        _ => {}
    }
    resource.insert("meta".into(), meta());
    StoredUser {
        resource,
        system_account: false,
        community_creator: i % 100 == 42,
    }
}

/// Reads a JSON array of user objects (from `--seed-file` or `POST /_control/users`).
/// Users without an `id` get the next free numeric one; duplicate ids are refused.
pub fn load(value: Value) -> Result<Vec<StoredUser>, String> {
    let Value::Array(items) = value else {
        return Err("expected a JSON array of user objects".into());
    };
    let mut users: Vec<StoredUser> = Vec::with_capacity(items.len());
    for (position, item) in items.into_iter().enumerate() {
        let user = from_json(item, &users)
            .map_err(|problem| format!("user #{}: {problem}", position + 1))?;
        users.push(user);
    }
    Ok(users)
}

/// One user object, with its marker keys taken out; `existing` decides the id when none is given.
pub fn from_json(value: Value, existing: &[StoredUser]) -> Result<StoredUser, String> {
    let Value::Object(mut resource) = value else {
        return Err("not a JSON object".into());
    };
    let system_account = take_flag(&mut resource, SYSTEM_ACCOUNT_MARKER)?;
    let community_creator = take_flag(&mut resource, COMMUNITY_CREATOR_MARKER)?;
    let id = match resource.get("id") {
        None | Some(Value::Null) => next_id(existing),
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(_) => return Err("\"id\" must be a non-empty string or a number".into()),
    };
    if existing.iter().any(|user| user.id() == id) {
        return Err(format!("duplicate id {id}"));
    }
    resource.insert("id".into(), Value::String(id));
    resource
        .entry("schemas")
        .or_insert_with(|| json!([USER_SCHEMA]));
    resource.entry("active").or_insert(Value::Bool(true));
    Ok(StoredUser {
        resource,
        system_account,
        community_creator,
    })
}

fn take_flag(resource: &mut Map<String, Value>, key: &str) -> Result<bool, String> {
    match resource.remove(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(flag),
        Some(_) => Err(format!("\"{key}\" must be true or false")),
    }
}

/// One more than the largest numeric id, never below the generated range.
pub fn next_id(existing: &[StoredUser]) -> String {
    let largest = existing
        .iter()
        .filter_map(|user| user.id().parse::<u64>().ok())
        .max()
        .unwrap_or(GENERATED_ID_BASE);
    (largest.max(GENERATED_ID_BASE) + 1).to_string()
}

/// A SCIM filter this server understands: `ATTRIBUTE eq "VALUE"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    attribute: FilterAttribute,
    value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FilterAttribute {
    Id,
    UserName,
    ExternalId,
    Email,
    Active,
}

pub fn parse_filter(text: &str) -> Result<Filter, String> {
    let text = text.trim();
    let mut parts = text.splitn(3, char::is_whitespace);
    let (Some(attribute), Some(operator), Some(value)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("cannot read the filter {text:?}"));
    };
    if !operator.eq_ignore_ascii_case("eq") {
        return Err(format!(
            "only the eq operator is supported, not {operator:?}"
        ));
    }
    let attribute = match attribute.to_ascii_lowercase().as_str() {
        "id" => FilterAttribute::Id,
        "username" => FilterAttribute::UserName,
        "externalid" => FilterAttribute::ExternalId,
        "emails" | "emails.value" | "emails[type eq \"work\"].value" => FilterAttribute::Email,
        "active" => FilterAttribute::Active,
        other => return Err(format!("filtering on {other:?} is not supported")),
    };
    let value = value.trim();
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\\\"", "\""),
        None if attribute == FilterAttribute::Active => value.to_ascii_lowercase(),
        None => return Err(format!("the value {value:?} must be in double quotes")),
    };
    Ok(Filter { attribute, value })
}

impl Filter {
    pub fn matches(&self, user: &StoredUser) -> bool {
        let text = |key: &str| user.resource.get(key).and_then(Value::as_str);
        match self.attribute {
            FilterAttribute::Id => user.id() == self.value,
            FilterAttribute::UserName => {
                text("userName").is_some_and(|name| name.eq_ignore_ascii_case(&self.value))
            }
            FilterAttribute::ExternalId => text("externalId") == Some(self.value.as_str()),
            FilterAttribute::Email => user
                .email_values()
                .any(|email| email.eq_ignore_ascii_case(&self.value)),
            FilterAttribute::Active => {
                let active = user
                    .resource
                    .get("active")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                active.to_string() == self.value
            }
        }
    }
}

/// Sets `userType` the way Stack does: only when the site allows promotion via SCIM, only to a
/// known role, and an unknown value is silently ignored. "Registered" removes the key, since
/// ordinary users have no `userType`.
fn set_user_type(user: &mut StoredUser, role: &Value, promotion_allowed: bool) {
    if !promotion_allowed {
        return;
    }
    match role.as_str() {
        Some("Registered") => {
            user.resource.remove("userType");
        }
        Some(role @ ("Moderator" | "Admin")) => {
            user.resource.insert("userType".into(), json!(role));
        }
        _ => {}
    }
}

/// Applies a SCIM PatchOp body. Only `replace` of `active` and `userType` changes anything;
/// other operations are accepted and ignored, as a lenient provider would.
pub fn apply_patch(
    user: &mut StoredUser,
    body: &Value,
    promotion_allowed: bool,
) -> Result<(), String> {
    let operations = body
        .get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .ok_or("the PatchOp body has no Operations list")?;
    for operation in operations {
        let op = operation.get("op").and_then(Value::as_str).unwrap_or("");
        if !op.eq_ignore_ascii_case("replace") && !op.eq_ignore_ascii_case("add") {
            continue;
        }
        let value = operation.get("value").unwrap_or(&Value::Null);
        match operation.get("path").and_then(Value::as_str) {
            Some(path) => apply_attribute(user, path, value, promotion_allowed),
            // Entra-style: no path, the value is an object of attributes.
            None => {
                if let Some(attributes) = value.as_object() {
                    for (path, value) in attributes {
                        apply_attribute(user, path, value, promotion_allowed);
                    }
                }
            }
        }
    }
    Ok(())
}

fn apply_attribute(user: &mut StoredUser, path: &str, value: &Value, promotion_allowed: bool) {
    if path.eq_ignore_ascii_case("userType") {
        set_user_type(user, value, promotion_allowed);
    } else if path.eq_ignore_ascii_case("active") {
        let active = match value {
            Value::Bool(active) => Some(*active),
            Value::String(text) => text.parse::<bool>().ok(),
            _ => None,
        };
        if let Some(active) = active {
            user.resource.insert("active".into(), json!(active));
        }
    }
}

/// Applies a PUT body. Follows the official script's own comment: "If no value is set for
/// `active`, the user account will be deactivated" (a missing or null `active` deactivates).
/// That is Stack's behaviour as the script's authors describe it, not something verified.
pub fn apply_put(user: &mut StoredUser, body: &Value, promotion_allowed: bool) {
    let active = body.get("active").and_then(Value::as_bool).unwrap_or(false);
    user.resource.insert("active".into(), json!(active));
    if let Some(role) = body.get("userType") {
        set_user_type(user, role, promotion_allowed);
    }
    for key in ["userName", "displayName", "name", "emails", "externalId"] {
        if let Some(value) = body.get(key) {
            user.resource.insert(key.into(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(users: &'a [StoredUser], id: &str) -> &'a StoredUser {
        users.iter().find(|user| user.id() == id).unwrap()
    }

    #[test]
    fn generation_has_documented_shape() {
        let users = generate(200, 3);
        assert_eq!(users.len(), 201);
        assert_eq!(users[0].id(), SYSTEM_ACCOUNT_ID);
        assert!(users[0].system_account);
        assert!(users[0].resource.get("emails").is_none());
        assert_eq!(users[0].resource["userName"], "Community");
        let first = find(&users, "1001");
        assert_eq!(first.resource["emails"][0]["value"], "user1@example.com");
        assert_eq!(first.resource["active"], true);
        assert_eq!(find(&users, "1003").resource["active"], false);
        assert_eq!(find(&users, "1007").resource["userType"], "Moderator");
        assert_eq!(find(&users, "1017").resource["userType"], "Admin");
        assert!(find(&users, "1057").is_privileged());
        assert!(!find(&users, "1001").is_privileged());
        assert!(find(&users, "1042").community_creator);
        assert!(find(&users, "1142").community_creator);
        assert_eq!(
            find(&users, "1005").resource["emails"][1]["value"],
            "user5.alt@example.org"
        );
        assert_eq!(
            find(&users, "1099").resource["emails"][1]["value"],
            "user98@example.com"
        );
        assert_eq!(generate(200, 3), users, "generation must be deterministic");
    }

    #[test]
    fn no_deactivation_when_every_is_zero() {
        assert!(generate(30, 0)
            .iter()
            .all(|user| user.resource["active"] == true));
    }

    #[test]
    fn load_takes_markers_and_assigns_ids() {
        let users = load(json!([
            {"id": "77", "userName": "a", "communityCreator": true},
            {"userName": "b", "systemAccount": true},
            {"id": 5, "userName": "c"}
        ]))
        .unwrap();
        assert!(users[0].community_creator);
        assert!(users[0].resource.get("communityCreator").is_none());
        assert_eq!(users[1].id(), "1001");
        assert!(users[1].system_account);
        assert_eq!(users[2].id(), "5");
        assert_eq!(users[2].resource["active"], true);
    }

    #[test]
    fn load_refuses_bad_input() {
        assert!(load(json!({"id": "1"})).is_err());
        assert!(load(json!([1])).is_err());
        assert!(load(json!([{"id": "1"}, {"id": "1"}]))
            .unwrap_err()
            .contains("duplicate"));
        assert!(load(json!([{"id": ""}])).is_err());
        assert!(load(json!([{"id": "2", "systemAccount": "yes"}])).is_err());
    }

    #[test]
    fn filters_match_case_insensitively_where_rfc_says() {
        let users = generate(100, 0);
        let filter = parse_filter("emails.value eq \"USER98@example.com\"").unwrap();
        let hits: Vec<&str> = users
            .iter()
            .filter(|u| filter.matches(u))
            .map(|u| u.id())
            .collect();
        assert_eq!(hits, ["1098", "1099"]);
        let filter = parse_filter("userName EQ \"User3\"").unwrap();
        assert_eq!(users.iter().filter(|u| filter.matches(u)).count(), 1);
        let filter = parse_filter("active eq true").unwrap();
        assert_eq!(users.iter().filter(|u| filter.matches(u)).count(), 101);
    }

    #[test]
    fn filters_refuse_what_they_cannot_read() {
        assert!(parse_filter("").is_err());
        assert!(parse_filter("userName").is_err());
        assert!(parse_filter("userName co \"x\"").is_err());
        assert!(parse_filter("title eq \"x\"").is_err());
        assert!(parse_filter("userName eq x").is_err());
    }

    fn moderator() -> StoredUser {
        load(json!([{"id": "9", "userType": "Moderator"}]))
            .unwrap()
            .remove(0)
    }

    fn demote_body() -> Value {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": "userType", "value": "Registered"}]})
    }

    #[test]
    fn demotion_needs_promotion_setting() {
        let mut user = moderator();
        apply_patch(&mut user, &demote_body(), false).unwrap();
        assert!(user.is_privileged());
        apply_patch(&mut user, &demote_body(), true).unwrap();
        assert!(!user.is_privileged());
        assert!(user.resource.get("userType").is_none());
    }

    #[test]
    fn unknown_role_is_silently_ignored() {
        let mut user = moderator();
        let body = json!({"Operations": [{"op": "replace", "path": "userType", "value": "Boss"}]});
        apply_patch(&mut user, &body, true).unwrap();
        assert_eq!(user.resource["userType"], "Moderator");
    }

    #[test]
    fn patch_active_with_and_without_path() {
        let mut user = moderator();
        let body = json!({"Operations": [{"op": "Replace", "path": "active", "value": false}]});
        apply_patch(&mut user, &body, false).unwrap();
        assert_eq!(user.resource["active"], false);
        let body = json!({"Operations": [{"op": "replace", "value": {"active": true}}]});
        apply_patch(&mut user, &body, false).unwrap();
        assert_eq!(user.resource["active"], true);
        assert!(apply_patch(&mut user, &json!({"schemas": []}), false).is_err());
    }

    #[test]
    fn put_without_active_deactivates() {
        let mut user = moderator();
        apply_put(
            &mut user,
            &json!({"active": null, "userType": "Registered"}),
            true,
        );
        assert_eq!(user.resource["active"], false);
        assert!(!user.is_privileged());
    }

    #[test]
    fn next_id_skips_past_largest() {
        assert_eq!(next_id(&[]), "1001");
        assert_eq!(next_id(&generate(3, 0)), "1004");
    }
}
