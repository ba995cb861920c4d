//! Choosing one account of an ambiguous preview row (and undoing the choice): the row, the
//! counts and the phrase rewritten together, only while the preview may still change.

use super::super::desks::OperatorDesk;
use super::super::sites::{not_connected, policy_for};
use super::super::views::stamp;
use super::{encode_for_storage, headline, phrase_of, RowChoice};
use crate::engine::resolve::{choose_candidate, row_name, undo_choice, ChoiceRefused};
use crate::storage::{PreviewRecord, PreviewRowChange};
use app::backend::{ConsoleError, PreviewSummary};
use app::ids::PreviewId;
use app::model::{Choice, PreviewCounts, PreviewOutcome, PreviewRow};

/// How many times a row change is tried again after another change to the same preview
/// landed between reading the preview and writing it.
const ROW_CHANGE_TRIES: usize = 5;

impl OperatorDesk<'_> {
    /// Chooses one of the accounts an ambiguous row on `line` could mean (or undoes that
    /// choice): the row, the counts and the phrase change together, and the trail records
    /// it. Refused once the preview was used, replaced or sent for approval (the run must be
    /// the preview that was confirmed or asked about), for an account that is not one of the
    /// row's candidates, and under the rules every row follows. Of two choices at once for
    /// one row, one is recorded and the other is refused as "already chosen".
    pub async fn choose_account(
        &self,
        preview_id: PreviewId,
        line: usize,
        choice: RowChoice,
    ) -> Result<PreviewSummary, ConsoleError> {
        for _ in 0..ROW_CHANGE_TRIES {
            let record = self.exact_preview(&preview_id).await?;
            self.rows_may_change(&record).await?;
            let storage = self.console.storage.as_ref();
            let mut rows = storage.all_preview_rows(self.team, &record.id).await?;
            let position = rows
                .iter()
                .position(|r| r.line == Some(line))
                .ok_or_else(|| {
                    ConsoleError::not_found(format!("This preview has no line {line}."))
                })?;
            let mut headline = headline(&record)?;
            let changed = match &choice {
                RowChoice::Choose(account_id) => {
                    let connection = storage
                        .connection(self.team)
                        .await?
                        .ok_or_else(not_connected)?;
                    let policy =
                        policy_for(&connection, headline.demote_privileged, self.actor.email());
                    let by = Choice {
                        account_id: String::new(),
                        by: self.actor_short_name().await,
                        at: stamp(self.console.clock.now()),
                    };
                    let elsewhere = |id: &str| selected_by_another(&rows, position, id);
                    choose_candidate(&rows[position], account_id, elsewhere, &policy, by)
                }
                RowChoice::Undo => undo_choice(&rows[position]),
            }
            .map_err(|ChoiceRefused(words)| ConsoleError::new(words))?;
            let before = std::mem::replace(&mut rows[position], changed);
            headline.counts = PreviewCounts::from_rows(&rows);
            headline.changes += 1;
            let phrase = phrase_of(record.action, &headline);
            let summary_json = encode_for_storage(&headline)?;
            let change = PreviewRowChange {
                preview_id: &record.id,
                expected_summary: &record.summary_json,
                summary: &summary_json,
                phrase: &phrase,
                position,
                row: &rows[position],
            };
            if storage.change_preview_row(self.team, &change).await? {
                self.record_choice(&record.id, &before, &rows[position])
                    .await;
                return self.viewer().preview(record.id).await;
            }
            // Another change landed first: read the preview again, and the row as it is now
            // decides (a choice made meanwhile refuses this one).
        }
        Err(ConsoleError::new(
            "This preview kept changing while your choice was saved; reload the page and try \
             again.",
        ))
    }

    /// Refuses a change to the rows of a preview a run was started from, that was replaced,
    /// or whose run a second operator was asked to approve.
    async fn rows_may_change(&self, record: &PreviewRecord) -> Result<(), ConsoleError> {
        if record.replaced_by.is_some() {
            return Err(ConsoleError::new(
                "This preview was replaced by a newer one with other options: choose on the \
                 newest preview.",
            ));
        }
        if record.claimed {
            return Err(ConsoleError::new(
                "A run was already started from this preview, so its rows can no longer \
                 change. Make a new preview to choose again.",
            ));
        }
        if self
            .console
            .storage
            .approval(self.team, &record.id)
            .await?
            .is_some()
        {
            return Err(ConsoleError::new(
                "A second operator was already asked to approve this preview, so its rows can \
                 no longer change: the run must be the preview they were asked about. To choose \
                 another account, use Preview again for a new preview.",
            ));
        }
        Ok(())
    }

    /// Writes the choice (or its undoing) to the trail, in the trail's words.
    async fn record_choice(&self, preview_id: &PreviewId, before: &PreviewRow, after: &PreviewRow) {
        use app::audit::AuditAction::{AccountChosen, ChoiceUndone};
        let (action, what, choice) = match (&after.chosen, &before.chosen) {
            (Some(made), _) => (AccountChosen, "Chose account", made),
            (None, Some(undone)) => (ChoiceUndone, "Undid the choice of account", undone),
            (None, None) => return,
        };
        let details = serde_json::json!({
            "choice": format!("{what} {} for {}", choice.account_id, row_name(after)),
            "line": after.line,
            "account_id": choice.account_id,
        });
        self.record(action, Some(preview_id.to_string()), details)
            .await
    }
}

/// The line (or None) of a row other than `position` that already selects account `id`.
fn selected_by_another(rows: &[PreviewRow], position: usize, id: &str) -> Option<Option<usize>> {
    rows.iter()
        .enumerate()
        .find(|(i, r)| {
            *i != position
                && r.outcome == PreviewOutcome::Selected
                && r.account_id.as_deref().map(str::trim) == Some(id.trim())
        })
        .map(|(_, r)| r.line)
}
