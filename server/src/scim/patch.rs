//! The SCIM PatchOp bodies (RFC 7644 §3.5.2) Offboard sends: demote and deactivate.

/// SCIM PatchOp that demotes a Moderator/Admin to an ordinary user.
pub fn demote_payload() -> serde_json::Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "userType", "value": "Registered"}]
    })
}

/// SCIM PatchOp that deactivates a user (reversible).
pub fn deactivate_payload() -> serde_json::Value {
    active_payload(false)
}

/// SCIM PatchOp that sets `active`: false deactivates, true reactivates (the undo window's
/// "Restore").
pub fn active_payload(active: bool) -> serde_json::Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": active}]
    })
}
