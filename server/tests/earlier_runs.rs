//! A second preview of a list a run already went through (the real `offboard serve` binary, as
//! the browser drives it): users Offboard deleted are "already deleted on <day> by <who>" with
//! that run's id, not "not found"; a user the site refused as a community creator is "may be
//! refused", still selected and counted as "up to". The site is the project's fault server, a
//! FAKE Stack site: no real SCIM server refuses a community creator (its user 1042 does).

mod support;

use serde_json::{json, Value};
use support::console_process::{ConsoleProcess, FIRST_OWNER};
use support::fault_server::FaultServer;

const LIST: &str = "Email\nuser1@example.com\nuser42@example.com\nuser3@example.com\n";

async fn rows(console: &ConsoleProcess, preview: &Value) -> Vec<Value> {
    let page = console
        .call(
            "preview_rows",
            &[
                ("preview_id", preview["id"].as_str().expect("id")),
                ("outcome", ""),
                ("offset", "0"),
                ("limit", "50"),
            ],
        )
        .await
        .expect("preview_rows");
    page["rows"].as_array().expect("rows").clone()
}

#[tokio::test]
async fn a_second_preview_cites_the_run_that_deleted_or_was_refused() {
    let site = FaultServer::start(&["--users", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");

    // Before any run, nothing is cited: three users will be deleted.
    let first = console.preview_text(LIST, "delete").await;
    assert_eq!(first["counts"]["selected"], json!(3), "{first}");
    assert_eq!(first["counts"]["may_be_refused"], json!(0), "{first}");
    let job_id = console.start_run(&first).await;
    let job = console.run_ended(&job_id).await;
    assert_eq!(
        job["counts"],
        json!([["Deleted", 2], ["CommunityCreator", 1]]),
        "{job}"
    );

    // The same list again.
    let second = console.preview_text(LIST, "delete").await;
    assert_eq!(second["counts"]["already_deleted"], json!(2), "{second}");
    assert_eq!(second["counts"]["not_found"], json!(0), "{second}");
    assert_eq!(second["counts"]["selected"], json!(1), "{second}");
    assert_eq!(second["counts"]["may_be_refused"], json!(1), "{second}");
    let rows = rows(&console, &second).await;
    let day = chrono::Utc::now().format("%-d %b %Y").to_string();
    let owner = FIRST_OWNER.1;
    for line in [2, 4] {
        let row = &rows[line - 2];
        assert_eq!(row["line"], json!(line), "{row}");
        assert_eq!(row["outcome"], json!("AlreadyDeleted"), "{row}");
        let reason = row["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(&format!("already deleted on {day} by {owner}")),
            "{reason}"
        );
        assert_eq!(row["earlier_run"]["job_id"], json!(job_id), "{row}");
    }
    let refused = &rows[1];
    assert_eq!(refused["outcome"], json!("Selected"), "{refused}");
    assert_eq!(refused["account_id"], json!("1042"), "{refused}");
    let why = refused["may_be_refused"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("may be refused:") && why.contains("community"),
        "{why}"
    );
    assert_eq!(refused["earlier_run"]["job_id"], json!(job_id), "{refused}");
}
