//! What the pages see of the service's records: plain values with times as text.

use crate::storage::{ConnectionRecord, JobEvent, JobRecord};
use app::backend::{ConnectionView, JobEventView, JobView};
use chrono::{DateTime, SecondsFormat, Utc};

pub fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn job_view(job: &JobRecord) -> JobView {
    JobView {
        id: job.id.clone(),
        created_at: stamp(job.created_at),
        created_by: job.created_by.clone(),
        site_url: job.site_url.clone(),
        action: job.action,
        state: job.state,
        reason: job.reason.clone(),
        started_at: job.started_at.map(stamp),
        finished_at: job.finished_at.map(stamp),
        total: job.total,
        done: job.done,
        counts: job.counts.iter().map(|(o, n)| (*o, *n)).collect(),
        approved_by: job.approved_by.clone(),
        undo: None,
    }
}

pub fn event_view(event: &JobEvent) -> JobEventView {
    JobEventView {
        seq: event.seq,
        // Milliseconds: the page's rate and the delivery benchmark read this stamp.
        at: event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        result: event.result.clone(),
        state: event.state_change,
        reason: event.reason.clone(),
    }
}

pub fn connection_view(record: Option<&ConnectionRecord>) -> ConnectionView {
    match record {
        None => ConnectionView::default(),
        Some(r) => ConnectionView {
            site_url: Some(r.site_url.clone()),
            scim_base_url: r.scim_base_url.clone(),
            token_saved: r.token_ciphertext.is_some(),
            token_hint: if r.token_ciphertext.is_some() {
                r.token_hint.clone()
            } else {
                String::new()
            },
            operator_email: r.operator_email.clone(),
            updated_at: Some(stamp(r.updated_at)),
        },
    }
}
