//! Whether the viewer of an open live-progress stream may still see its run. A stream is
//! authorised once, when it opens; after that its session is read afresh every few seconds
//! (`--watcher-recheck-seconds`), so signing out, signing out everywhere, a password change,
//! the session's lifetime or a removal from the team ends the stream within that period.

use crate::http::caller::{SESSION_LIFETIME_HOURS, SIGNED_IN};
use crate::service::accounts::SignedIn;
use crate::service::Console;
use app::ids::{AccountId, TeamId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tower_sessions::session::Id;
use tower_sessions::Session;

/// Why a viewer's access to a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The session is gone from the store (signed out here) or holds someone else.
    SignedOut,
    /// The account's sessions were ended (everywhere, password changed, account gone) or the
    /// session outlived its absolute lifetime.
    SessionEnded,
    /// The person is no longer a member of the run's team.
    LeftTeam,
    /// The check itself failed (the database did not answer): the stream ends rather than
    /// go on unchecked; the browser reconnects through the usual sign-in check.
    CouldNotCheck,
}

impl Ending {
    /// Short name for the log.
    pub fn name(self) -> &'static str {
        match self {
            Ending::SignedOut => "signed out",
            Ending::SessionEnded => "session ended",
            Ending::LeftTeam => "no longer in the team",
            Ending::CouldNotCheck => "could not check",
        }
    }

    /// What the viewer is told, as the stream's last event.
    pub fn words(self) -> &'static str {
        match self {
            Ending::SignedOut => {
                "Your access to this run ended: you signed out. Sign in again to follow it."
            }
            Ending::SessionEnded => {
                "Your access to this run ended: your session ended (it expired, you signed out \
                 everywhere, or your password changed). Sign in again to follow it."
            }
            Ending::LeftTeam => {
                "Your access to this run ended: you are no longer a member of its team."
            }
            Ending::CouldNotCheck => {
                "This live view stopped: Offboard could not check that you may still see this \
                 run. Reload the page to follow it again."
            }
        }
    }
}

/// One session's access to one team, as streams share it.
type Key = (Id, AccountId, TeamId);

/// The re-check of one (session, person, team), shared by every stream of it: ten tabs of
/// one browser on runs of one team cost one check a period, not ten.
struct SharedCheck {
    /// None while access holds; the ending once it has ended (then it stays so).
    verdict: watch::Receiver<Option<Ending>>,
    task: tokio::task::AbortHandle,
}

impl Drop for SharedCheck {
    /// The last stream of the session is gone: nobody needs the check any more.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The re-checks running now, one per (session, person, team) with an open stream.
pub struct AccessChecks {
    period: Duration,
    running: Mutex<HashMap<Key, Weak<SharedCheck>>>,
}

/// One stream's hold on its session's re-check.
pub struct Access {
    check: Option<(Arc<SharedCheck>, watch::Receiver<Option<Ending>>)>,
}

impl Access {
    /// For a request with no session at all: only a harness that puts a member in front of
    /// the routes (tests) makes one; `offboard serve` gives every request a session, and
    /// `http::caller::identify` finds no member without one.
    pub fn unchecked() -> Access {
        Access { check: None }
    }

    /// Waits until access ends, and says why; never returns for an unchecked stream.
    pub async fn ended(&mut self) -> Ending {
        let Some((_, verdict)) = &mut self.check else {
            return std::future::pending().await;
        };
        match verdict.wait_for(Option::is_some).await {
            Ok(ending) => ending.unwrap_or(Ending::CouldNotCheck),
            // The check stopped without a verdict (it cannot, short of a panic): fail closed.
            Err(_) => Ending::CouldNotCheck,
        }
    }
}

impl AccessChecks {
    pub fn new(period: Duration) -> AccessChecks {
        AccessChecks {
            period,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The re-check of `session` as `account`, a member of `team`: joined if one runs already,
    /// else started. None for a session with no id (one that was never stored).
    pub fn follow(
        &self,
        console: &Arc<Console>,
        session: &Session,
        account: AccountId,
        team: TeamId,
    ) -> Option<Access> {
        let key = (session.id()?, account, team);
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, check| check.strong_count() > 0);
        // A check that has ended is not joined: this stream was just authorised, so a new
        // check starts (the old one may have met a database that did not answer).
        let live = running
            .get(&key)
            .and_then(Weak::upgrade)
            .filter(|check| check.verdict.borrow().is_none());
        let check = match live {
            Some(check) => check,
            None => {
                let (tell, verdict) = watch::channel(None);
                let task = tokio::spawn(keep_checking(
                    console.clone(),
                    session.clone(),
                    account,
                    team,
                    self.period,
                    tell,
                ))
                .abort_handle();
                let check = Arc::new(SharedCheck { verdict, task });
                running.insert(key, Arc::downgrade(&check));
                check
            }
        };
        let verdict = check.verdict.clone();
        Some(Access {
            check: Some((check, verdict)),
        })
    }

    /// Re-checks running now (for tests).
    #[cfg(test)]
    fn running(&self) -> usize {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.values().filter(|c| c.strong_count() > 0).count()
    }
}

/// Every `period`, until access ends (or the last stream leaves and the task is aborted).
async fn keep_checking(
    console: Arc<Console>,
    session: Session,
    account: AccountId,
    team: TeamId,
    period: Duration,
    tell: watch::Sender<Option<Ending>>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Some(ending) = why_ended(&console, &session, account, team).await {
            tracing::info!(team = %team, reason = ending.name(), "live-progress streams ended: the viewer's access to the run ended");
            let _ = tell.send(Some(ending));
            return;
        }
    }
}

/// Why `account` may no longer follow `team`'s runs through `session`, if they may not: the
/// same questions `http::caller` asks of every request, asked of the stored session afresh.
async fn why_ended(
    console: &Console,
    session: &Session,
    account: AccountId,
    team: TeamId,
) -> Option<Ending> {
    // The stream read the session once, when it opened; sign-out deletes it from the store.
    if let Err(e) = session.load().await {
        tracing::warn!(error = %e, "could not read a session to re-check a live-progress stream");
        return Some(Ending::CouldNotCheck);
    }
    let stored = match session.get::<SignedIn>(SIGNED_IN).await {
        Ok(Some(stored)) if stored.account == account => stored,
        Ok(_) => return Some(Ending::SignedOut),
        Err(_) => return Some(Ending::CouldNotCheck),
    };
    let lifetime = chrono::Duration::hours(SESSION_LIFETIME_HOURS);
    let person = match console.person(&stored, lifetime).await {
        Ok(Some(person)) => person,
        Ok(None) => return Some(Ending::SessionEnded),
        Err(_) => return Some(Ending::CouldNotCheck),
    };
    // `member` falls back to another of the person's teams: only this team will do.
    match console.member(&person, Some(team)).await {
        Ok(Some(member)) if member.team == team => None,
        Ok(_) => Some(Ending::LeftTeam),
        Err(_) => Some(Ending::CouldNotCheck),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBox;
    use crate::service::{self, Settings};
    use crate::storage;
    use tower_sessions::SessionStore;

    /// A console on a fresh SQLite file, a session for `account` stored in its session table,
    /// and checks made every 0.1 s.
    async fn signed_in(
        dir: &std::path::Path,
        account: AccountId,
    ) -> (Arc<Console>, storage::SessionTable, Session, AccessChecks) {
        let url = format!("sqlite://{}", dir.join("offboard.db").display());
        let db = storage::open(&url).await.expect("open db");
        let store = db.pool.session_store().await.expect("session table");
        let secrets = SecretBox::load_or_create(dir, None).expect("key");
        let console = service::build(db.storage, secrets, Settings::new(dir.to_path_buf()));
        let session = Session::new(Some(Id::default()), Arc::new(store.clone()), None);
        let signed_in = SignedIn {
            account,
            epoch: 0,
            since: chrono::Utc::now(),
            team: None,
        };
        session.insert(SIGNED_IN, signed_in).await.unwrap();
        session.save().await.unwrap();
        let checks = AccessChecks::new(Duration::from_millis(100));
        (console, store, session, checks)
    }

    async fn ending_of(access: &mut Access) -> Ending {
        tokio::time::timeout(Duration::from_secs(20), access.ended())
            .await
            .expect("access ends")
    }

    #[tokio::test]
    async fn the_streams_of_one_session_share_one_check_and_all_end_with_it() {
        let dir = tempfile::tempdir().unwrap();
        // The session names an account that does not exist: as after the account is gone.
        let gone = AccountId::new(99);
        let (console, _store, session, checks) = signed_in(dir.path(), gone).await;
        let (one, two) = (TeamId::new(1), TeamId::new(2));
        let mut first = checks.follow(&console, &session, gone, one).unwrap();
        let mut second = checks.follow(&console, &session, gone, one).unwrap();
        assert_eq!(checks.running(), 1, "one check for one session and team");
        let mut other_team = checks.follow(&console, &session, gone, two).unwrap();
        assert_eq!(checks.running(), 2);
        for access in [&mut first, &mut second, &mut other_team] {
            assert_eq!(ending_of(access).await, Ending::SessionEnded);
        }
        // An ended check is not joined: a new stream gets a check of its own.
        let mut later = checks.follow(&console, &session, gone, one).unwrap();
        assert_eq!(ending_of(&mut later).await, Ending::SessionEnded);
        drop((first, second, other_team, later));
        assert_eq!(checks.running(), 0, "the last stream gone, no check runs");
    }

    #[tokio::test]
    async fn a_session_deleted_from_the_store_ends_as_signed_out() {
        let dir = tempfile::tempdir().unwrap();
        let account = AccountId::new(1);
        let (console, store, session, checks) = signed_in(dir.path(), account).await;
        let mut access = checks
            .follow(&console, &session, account, TeamId::new(1))
            .unwrap();
        // Signing out elsewhere deletes the stored session.
        let id = session.id().unwrap();
        store.delete(&id).await.unwrap();
        assert_eq!(ending_of(&mut access).await, Ending::SignedOut);
        // A session that was never stored has no id: no stream is followed for it.
        let never = Session::new(None, Arc::new(store.clone()), None);
        assert!(checks
            .follow(&console, &never, account, TeamId::new(1))
            .is_none());
    }

    #[tokio::test]
    async fn an_unchecked_stream_never_ends_by_itself() {
        let mut access = Access::unchecked();
        let waited = tokio::time::timeout(Duration::from_millis(200), access.ended()).await;
        assert!(waited.is_err());
    }

    #[test]
    fn every_ending_has_words_and_none_is_empty() {
        for ending in [
            Ending::SignedOut,
            Ending::SessionEnded,
            Ending::LeftTeam,
            Ending::CouldNotCheck,
        ] {
            assert!(ending.words().len() > 30 && !ending.name().is_empty());
            // One SSE data line: a line break would split the event.
            assert!(!ending.words().contains('\n'), "{ending:?}");
        }
    }
}
