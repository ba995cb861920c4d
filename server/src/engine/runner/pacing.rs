//! How fast and how often a run sends: the shared throttling gate, the number of requests in
//! flight, and which replies are worth another try.

use super::*;

/// The run's shared pace: how many requests may be in flight, and until when everybody waits
/// because the site asked us to slow down.
pub(super) struct Pace {
    pub(super) state: Mutex<PaceState>,
    pub(super) changed: Notify,
}

#[derive(Clone, Debug)]
pub(super) struct PaceState {
    pub(super) limit: usize,
    pub(super) max: usize,
    pub(super) max_backoff: Duration,
    pub(super) in_flight: usize,
    pub(super) peak: usize,
    pub(super) resume_at: Option<Instant>,
    pub(super) calm_replies: u32,
    pub(super) throttle_round: u32,
    pub(super) requests: u64,
    pub(super) throttled: u64,
}

/// One request in flight; dropping it frees the slot.
pub(super) struct InFlight<'p>(&'p Pace);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).in_flight -= 1;
        self.0.changed.notify_waiters();
    }
}

impl Pace {
    pub(super) fn new(max: usize, max_backoff: Duration) -> Pace {
        Pace {
            state: Mutex::new(PaceState {
                limit: max,
                max,
                max_backoff,
                in_flight: 0,
                peak: 0,
                resume_at: None,
                calm_replies: 0,
                throttle_round: 0,
                requests: 0,
                throttled: 0,
            }),
            changed: Notify::new(),
        }
    }

    /// Waits for the throttling gate to open and a free slot; `None` if the run is cancelled
    /// meanwhile.
    pub(super) async fn acquire(&self, control: &mut RunControl) -> Option<InFlight<'_>> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let gate = {
                let mut s = lock(&self.state);
                match s.resume_at {
                    Some(at) if at > Instant::now() => Some(at),
                    _ if s.in_flight < s.limit => {
                        s.in_flight += 1;
                        s.peak = s.peak.max(s.in_flight);
                        return Some(InFlight(self));
                    }
                    _ => None,
                }
            };
            let gate_opens = async move {
                match gate {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = gate_opens => {}
                _ = control.cancelled() => return None,
            }
        }
    }

    /// A request is going out now (counted here, after the journal said yes).
    pub(super) fn sent(&self) {
        lock(&self.state).requests += 1;
    }

    /// The site asked us to slow down: close the gate for everybody and lower the limit. The
    /// limit is lowered once per throttling episode: requests already in flight when the gate
    /// closed will come back throttled too, and must not halve it again.
    pub(super) fn throttled(&self, retry_after: Option<Duration>) {
        let mut s = lock(&self.state);
        let now = Instant::now();
        s.throttled += 1;
        s.calm_replies = 0;
        let gate_open = !matches!(s.resume_at, Some(at) if at > now);
        if gate_open {
            s.throttle_round = s.throttle_round.saturating_add(1);
            s.limit = (s.limit / 2).max(1);
        }
        let wait =
            retry_after.unwrap_or_else(|| backoff(s.throttle_round, THROTTLE_BASE, s.max_backoff));
        crate::metrics::backoff_wait(crate::metrics::Wait::Throttled, wait);
        let until = now + wait;
        s.resume_at = Some(s.resume_at.map_or(until, |at| at.max(until)));
    }

    /// A reply that was not throttled: after enough of them, allow one more request in flight.
    pub(super) fn calm(&self) {
        let mut s = lock(&self.state);
        s.throttle_round = 0;
        s.calm_replies += 1;
        if s.calm_replies >= RECOVER_AFTER && s.limit < s.max {
            s.limit += 1;
            s.calm_replies = 0;
            drop(s);
            self.changed.notify_waiters();
        }
    }
}

/// Tries spent on one request.
#[derive(Default)]
pub(super) struct Budget {
    pub(super) tries: u32,
    pub(super) throttles: u32,
    pub(super) problem: String,
}

impl Budget {
    /// Gives up once `max_attempts` tries went wrong, saying what went wrong last.
    pub(super) fn check(&self, max_attempts: u32) -> Step<()> {
        if self.tries >= max_attempts.max(1) {
            return Err(Finish::new(
                ItemOutcome::Failed,
                format!(
                    "No usable answer after {} tries: {}.",
                    self.tries, self.problem
                ),
            ));
        }
        Ok(())
    }
}

/// A reply sorted by what the retry loop must do with it.
pub(super) enum Answer<T> {
    Final(T),
    Throttled(Option<Duration>),
    /// Worth another try. `unknown`: the request may have been carried out anyway.
    Retry {
        problem: String,
        unknown: bool,
    },
    Unauthorized(u16),
}

pub(super) fn transport_answer<T>(error: TransportError) -> Answer<T> {
    // Without a connection (DNS, refused, TLS handshake) the request never reached the site.
    let unknown = matches!(error, TransportError::Timeout(_) | TransportError::Other(_));
    Answer::Retry {
        problem: error.to_string(),
        unknown,
    }
}

pub(super) fn transient_problem(reply: &ScimReply) -> String {
    format!("the site answered: {}", plain_message(reply))
}

/// Sorts a reply for the retry loop: the classes every request shares (`scim::replies`
/// decides which), else the operation's own reading of it (`classify`). `unknown`: whether a
/// transient answer with this status leaves the request possibly carried out.
fn sorted<R>(
    reply: Result<ScimReply, TransportError>,
    classify: fn(&ScimReply, SystemTime) -> R,
    unknown: fn(u16) -> bool,
) -> Answer<R> {
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return transport_answer(e),
    };
    let now = SystemTime::now();
    match shared_reply(&reply, now) {
        Some(SharedReply::Throttled(retry_after)) => Answer::Throttled(retry_after),
        Some(SharedReply::Transient(status)) => Answer::Retry {
            problem: transient_problem(&reply),
            unknown: unknown(status),
        },
        Some(SharedReply::Unauthorized) => Answer::Unauthorized(reply.status),
        None => Answer::Final(classify(&reply, now)),
    }
}

pub(super) fn delete_answer(reply: Result<ScimReply, TransportError>) -> Answer<DeleteReply> {
    sorted(reply, classify_delete, delete_maybe_applied)
}

/// A PATCH not answered may have been applied: the runner looks before trying again.
pub(super) fn patch_answer(reply: Result<ScimReply, TransportError>) -> Answer<PatchReply> {
    sorted(reply, classify_patch, |_| true)
}

/// A GET changes nothing, so an unanswered one is simply asked again.
pub(super) fn get_answer(reply: Result<ScimReply, TransportError>) -> Answer<GetReply> {
    sorted(reply, classify_get, |_| false)
}
