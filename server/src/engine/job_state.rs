//! The job state machine, as one pure function: which state a run goes to when something
//! happens to it, and which happenings are refused. The service's pause/resume/cancel, the
//! commands other replicas stored, and (through [`JobEvent::starts_from`]) the storage's SQL
//! guards all follow this one table. It lives in the engine so storage may import it too.

use model::deletion::JobState;

/// Something that happens to a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobEvent {
    /// Someone pressed pause.
    Pause,
    /// Someone pressed resume.
    Resume,
    /// Someone pressed cancel.
    Cancel,
    /// A runner starts driving the job (its start, a restart, a take-over). A job that was
    /// being cancelled is driven again only to settle its users, then ends as stopped.
    Launch,
    /// Offboard cannot drive the job on (no token, another site): it waits for the admin.
    Halt,
    /// Every user has a result.
    Finish,
    /// The run ended before every user was processed (cancelled, or a stop condition).
    Stop,
    /// Offboard itself failed.
    Fail,
    /// The site stopped answering mid-run: the run pauses itself until the admin resumes it
    /// (see `runner/outage.rs`). A run being cancelled stays cancelling: the cancel wins.
    SiteDown,
}

impl JobEvent {
    pub const ALL: [JobEvent; 9] = [
        JobEvent::Pause,
        JobEvent::Resume,
        JobEvent::Cancel,
        JobEvent::Launch,
        JobEvent::Halt,
        JobEvent::Finish,
        JobEvent::Stop,
        JobEvent::Fail,
        JobEvent::SiteDown,
    ];

    /// The event a pressed button is.
    pub fn of_command(command: model::deletion::JobCommand) -> JobEvent {
        match command {
            model::deletion::JobCommand::Pause => JobEvent::Pause,
            model::deletion::JobCommand::Resume => JobEvent::Resume,
            model::deletion::JobCommand::Cancel => JobEvent::Cancel,
        }
    }

    /// The states this event may start from, in [`JobState::ALL`]'s order: what a storage
    /// guard binds (`... WHERE state IN (…)`), so the database refuses what [`next_state`]
    /// refuses.
    pub fn starts_from(self) -> Vec<JobState> {
        JobState::ALL
            .into_iter()
            .filter(|from| next_state(*from, self).is_ok())
            .collect()
    }
}

/// Why an event cannot happen to a run in its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub from: JobState,
    pub event: JobEvent,
}

impl Refused {
    /// The refusal in the words the admin reads.
    pub fn words(&self) -> String {
        if self.from.has_ended() {
            format!("This run has already ended ({}).", self.from)
        } else {
            // Only a run being cancelled refuses an event before its end: it cannot be
            // paused or resumed any more, only settled.
            "This run is being cancelled.".to_string()
        }
    }
}

/// The state a run in state `from` goes to on `event`, or why it does not.
pub fn next_state(from: JobState, event: JobEvent) -> Result<JobState, Refused> {
    use JobEvent as E;
    use JobState as S;
    let refused = Err(Refused { from, event });
    if from.has_ended() {
        return refused;
    }
    match (from, event) {
        (S::Cancelling, E::Pause | E::Resume | E::SiteDown) => refused,
        (_, E::Pause | E::Halt | E::SiteDown) => Ok(S::Paused),
        (_, E::Resume | E::Launch) => Ok(S::Running),
        (_, E::Cancel) => Ok(S::Cancelling),
        (_, E::Finish) => Ok(S::Finished),
        (_, E::Stop) => Ok(S::Stopped),
        (_, E::Fail) => Ok(S::Failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobEvent as E;
    use JobState as S;

    /// Every (state, event) pair and what it gives: `None` is refused.
    #[rustfmt::skip]
    const TABLE: [(JobState, [Option<JobState>; 9]); 7] = [
        //                  Pause            Resume           Cancel              Launch           Halt             Finish             Stop              Fail             SiteDown
        (S::Queued,     [Some(S::Paused), Some(S::Running), Some(S::Cancelling), Some(S::Running), Some(S::Paused), Some(S::Finished), Some(S::Stopped), Some(S::Failed), Some(S::Paused)]),
        (S::Running,    [Some(S::Paused), Some(S::Running), Some(S::Cancelling), Some(S::Running), Some(S::Paused), Some(S::Finished), Some(S::Stopped), Some(S::Failed), Some(S::Paused)]),
        (S::Paused,     [Some(S::Paused), Some(S::Running), Some(S::Cancelling), Some(S::Running), Some(S::Paused), Some(S::Finished), Some(S::Stopped), Some(S::Failed), Some(S::Paused)]),
        (S::Cancelling, [None,            None,             Some(S::Cancelling), Some(S::Running), Some(S::Paused), Some(S::Finished), Some(S::Stopped), Some(S::Failed), None]),
        (S::Finished,   [None,            None,             None,                None,             None,            None,              None,             None,            None]),
        (S::Stopped,    [None,            None,             None,                None,             None,            None,              None,             None,            None]),
        (S::Failed,     [None,            None,             None,                None,             None,            None,              None,             None,            None]),
    ];

    #[test]
    fn every_state_and_event_gives_what_the_table_says() {
        // The table names every state once, in order, and its columns follow JobEvent::ALL.
        assert_eq!(TABLE.map(|(from, _)| from), S::ALL);
        let mut pairs = 0;
        for (from, row) in TABLE {
            for (event, expected) in E::ALL.into_iter().zip(row) {
                let got = next_state(from, event);
                match expected {
                    Some(to) => assert_eq!(got, Ok(to), "{from:?} on {event:?}"),
                    None => assert_eq!(got, Err(Refused { from, event }), "{from:?} on {event:?}"),
                }
                pairs += 1;
            }
        }
        assert_eq!(pairs, S::ALL.len() * E::ALL.len());
    }

    #[test]
    fn the_states_an_event_starts_from_are_the_tables_column() {
        for (column, event) in E::ALL.into_iter().enumerate() {
            let from: Vec<JobState> = TABLE
                .iter()
                .filter(|(_, row)| row[column].is_some())
                .map(|(from, _)| *from)
                .collect();
            assert_eq!(event.starts_from(), from, "{event:?}");
        }
        assert_eq!(
            E::Pause.starts_from(),
            vec![S::Queued, S::Running, S::Paused]
        );
        // No event leaves an ended run.
        for event in E::ALL {
            assert!(event.starts_from().iter().all(|s| !s.has_ended()));
        }
    }

    #[test]
    fn refusals_say_why_in_the_admins_words() {
        let ended = next_state(S::Finished, E::Cancel).unwrap_err();
        assert_eq!(ended.words(), "This run has already ended (finished).");
        let cancelling = next_state(S::Cancelling, E::Resume).unwrap_err();
        assert_eq!(cancelling.words(), "This run is being cancelled.");
    }

    #[test]
    fn the_buttons_are_the_commands_events() {
        use model::deletion::JobCommand;
        assert_eq!(JobEvent::of_command(JobCommand::Pause), E::Pause);
        assert_eq!(JobEvent::of_command(JobCommand::Resume), E::Resume);
        assert_eq!(JobEvent::of_command(JobCommand::Cancel), E::Cancel);
    }
}
