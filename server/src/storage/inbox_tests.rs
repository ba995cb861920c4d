//! What "Waiting for you" reads of a team's runs, on both databases: its paused runs and the
//! runs that ended inside the window, never older ones, running ones or another team's.

use super::column::Stamp;
use super::test_db::{on_both_databases, Backend, TestDb};
use super::tests::{confirmed_preview, jobs_in, new_job, now, run, set_state};
use super::*;

const OTHER_TEAM: TeamId = TeamId::new(2);

async fn paused_runs_and_runs_ended_in_the_window_are_read(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    jobs_in(
        s,
        &[
            ("j-paused", Some(JobState::Paused)),
            ("j-running", Some(JobState::Running)),
            ("j-queued", None),
            ("j-ended-now", Some(JobState::Finished)),
            ("j-ended-at-the-edge", Some(JobState::Stopped)),
            ("j-ended-before", Some(JobState::Failed)),
        ],
    )
    .await;
    let since = now() - chrono::Duration::days(7);
    let stamp = |time| Stamp::text(time);
    t.execute(&format!(
        "UPDATE jobs SET finished_at = '{}' WHERE id = 'j-ended-at-the-edge'",
        stamp(since)
    ))
    .await;
    t.execute(&format!(
        "UPDATE jobs SET finished_at = '{}' WHERE id = 'j-ended-before'",
        stamp(since - chrono::Duration::microseconds(1))
    ))
    .await;
    confirmed_preview(s, OTHER_TEAM, "p-2").await;
    s.create_job(&new_job("j-team-2", OTHER_TEAM, "p-2", vec![run("b1")]))
        .await
        .unwrap();
    set_state(s, "j-team-2", JobState::Paused).await;

    let mut ids: Vec<String> = s
        .runs_to_look_at(TeamId::BUILT_IN, since)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["j-ended-at-the-edge", "j-ended-now", "j-paused"]);
    let other: Vec<String> = s
        .runs_to_look_at(OTHER_TEAM, since)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id.to_string())
        .collect();
    assert_eq!(other, ["j-team-2"]);
}

on_both_databases!(paused_runs_and_runs_ended_in_the_window_are_read);
