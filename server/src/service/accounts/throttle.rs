//! Sign-in with a password, throttled: attempts are reserved (counted) before the password is
//! checked, per account and per address; a flood from one address is slowed down.

use super::*;

/// How long an attempt from an address with `failures` failed sign-ins in the window waits
/// before its password is checked: nothing within the allowance, then a step more for each
/// failure past it, up to a cap. A flood from one address (or from everyone behind one proxy)
/// is slowed down; the right password still gets in.
pub fn address_slowdown(failures: u32) -> Option<std::time::Duration> {
    let past = failures.checked_sub(FAILURES_PER_ADDRESS)?;
    Some(
        ADDRESS_SLOWDOWN_STEP
            .saturating_mul(past.saturating_add(1))
            .min(ADDRESS_SLOWDOWN_MAX),
    )
}

fn subject_of_account(email: &str) -> String {
    format!("account:{email}")
}

fn subject_of_address(address: &str) -> String {
    format!("address:{address}")
}

impl Console {
    /// Signs in with email and password. The attempt is reserved (counted as a failure of the
    /// account and of the address) before the password is checked, so any number sent at once
    /// get no more tries than one after another; a success takes its reservation back. Every
    /// failure says the same (no account probing); past the account's limit even the right
    /// password is refused until the window passes; past the address's allowance each attempt
    /// waits longer first ([`address_slowdown`]).
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &str,
        address: &str,
    ) -> Result<Person, AccountRefusal> {
        let email = normalise_email(email).unwrap_or_else(|| email.trim().to_lowercase());
        let now = self.clock.now();
        let since = now - Duration::minutes(THROTTLE_MINUTES);
        let (by_account, by_address) = (subject_of_account(&email), subject_of_address(address));
        let attempt = uuid::Uuid::new_v4().to_string();
        let counts = self
            .storage
            .reserve_sign_in(&[by_account.clone(), by_address], &attempt, now, since)
            .await?;
        let (account_failures, address_failures) = (
            counts.first().copied().unwrap_or(u32::MAX),
            counts.get(1).copied().unwrap_or(u32::MAX),
        );
        let record = self.storage.account_by_email(&email).await?;
        if account_failures >= FAILURES_PER_ACCOUNT {
            tracing::warn!(address, "a sign-in was throttled");
            if let Some(r) = &record {
                self.record_sign_in(&Person::of(r), AuditAction::SignInFailed, true)
                    .await;
            }
            return Err(AccountProblem::Throttled.into());
        }
        if let Some(wait) = address_slowdown(address_failures) {
            tracing::warn!(
                "sign-ins from {address} are slowed down: {} failed in {THROTTLE_MINUTES} \
                 minutes, {} ms before this one is checked",
                address_failures,
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
        }
        let hash = record.as_ref().and_then(|r| r.password_hash.clone());
        let matches = self.passwords.matches(password, hash).await;
        let record = match record {
            Some(r) if matches && r.password_hash.is_some() => r,
            known => {
                tracing::warn!(address, "a sign-in failed");
                if let Some(r) = known {
                    self.record_sign_in(&Person::of(&r), AuditAction::SignInFailed, false)
                        .await;
                }
                return Err(AccountProblem::WrongPassword.into());
            }
        };
        self.storage.release_sign_in(&attempt).await?;
        self.storage.clear_sign_in_failures(&by_account).await?;
        let person = Person::of(&record);
        self.record_sign_in(&person, AuditAction::SignIn, false)
            .await;
        Ok(person)
    }

    /// Forgets sign-in failures older than the throttling window, and the subjects (accounts,
    /// addresses) with none left, so strangers' random emails do not pile up (hourly).
    pub async fn forget_old_sign_in_failures(&self) {
        let before = self.clock.now() - Duration::minutes(THROTTLE_MINUTES);
        match self.storage.forget_sign_in_subjects(before).await {
            Ok(0) => {}
            Ok(gone) => tracing::info!(subjects = gone, "forgot old sign-in failures"),
            Err(e) => tracing::warn!(error = %e, "could not forget old sign-in failures"),
        }
    }

    /// Sign-ins are recorded in the trail of every team the person belongs to (a team's
    /// owners see who came in); a failed sign-in for an unknown email is only logged.
    pub(super) async fn record_sign_in(
        &self,
        person: &Person,
        action: AuditAction,
        throttled: bool,
    ) {
        let teams = match self.storage.memberships(person.account).await {
            Ok(teams) => teams,
            Err(e) => {
                tracing::error!(error = %e, "could not read memberships to record a sign-in");
                return;
            }
        };
        for (team, _) in teams {
            let details = if throttled {
                json!({ "throttled": true })
            } else {
                json!({})
            };
            self.record_for(team.id, person, action, details).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_address_is_slowed_more_and_more_never_stopped() {
        use std::time::Duration as Wait;
        assert_eq!(address_slowdown(0), None);
        assert_eq!(address_slowdown(FAILURES_PER_ADDRESS - 1), None);
        assert_eq!(
            address_slowdown(FAILURES_PER_ADDRESS),
            Some(Wait::from_millis(250))
        );
        assert_eq!(
            address_slowdown(FAILURES_PER_ADDRESS + 3),
            Some(Wait::from_millis(1000))
        );
        // Capped: however many strangers failed, the right password waits at most this long.
        assert_eq!(address_slowdown(800), Some(Wait::from_secs(5)));
        assert_eq!(address_slowdown(u32::MAX), Some(Wait::from_secs(5)));
    }
}
