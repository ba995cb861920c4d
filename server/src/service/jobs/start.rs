//! Starting a run from a confirmed preview: the checks, the fresh listing, the job written
//! (with its approval) in one transaction, and its runner launched.

use super::*;

impl JobSupervisor {
    /// Checks the typed phrase, re-lists the site, creates the job from what still matches the
    /// preview, and starts it in the background. With `approval` (the request `actor` gives
    /// by typing the phrase), creating the job is approving it: both happen in one transaction
    /// or neither does, so a request declined, withdrawn or expired while the site was listed
    /// starts nothing and the answer says so.
    pub async fn start(
        self: &Arc<Self>,
        permit: &Permit<Operate>,
        preview_id: &PreviewId,
        typed: &str,
        actor: Actor,
        approval: Option<&ApprovalRecord>,
    ) -> Result<JobRecord, ConsoleError> {
        let team_id = permit.team;
        let stored = StoredPreview::load(self.storage.as_ref(), team_id, preview_id).await?;
        let record = &stored.record;
        if record.replaced_by.is_some() {
            return Err(ConsoleError::new(
                "This preview was replaced by a newer one with other options: check the newest \
                 preview and type its phrase.",
            ));
        }
        if record.claimed {
            return Err(ConsoleError::new(
                "This preview was already used to start a run; make a new preview.",
            ));
        }
        crate::service::phrase_typed(&record.phrase, typed, "start the run")?;
        // Only the source's connection is needed here: its file and listing texts (tens of MB
        // for a large site) are let go at once, before the site is listed again.
        let PreviewSourceRecord {
            users_url,
            token_fingerprint,
            ..
        } = StoredPreview::source(self.storage.as_ref(), team_id, record).await?;
        let site = open_site(self.storage.as_ref(), &self.secrets, &self.http, team_id).await?;
        if site.endpoint.users_url() != users_url {
            return Err(ConsoleError::new(
                "The site connection changed since this preview was made; make a new preview.",
            ));
        }
        // Previews kept from before fingerprints were recorded have none ('').
        if !token_fingerprint.is_empty() && site.token_fingerprint != token_fingerprint {
            return Err(ConsoleError::new(
                "The SCIM token was replaced since this preview was made; make a new preview.",
            ));
        }
        if stored.preview.counts.selected == 0 {
            return Err(ConsoleError::new(
                "This preview selects nobody, so there is nothing to run.",
            ));
        }
        let site_url = site.endpoint.site_url().to_string();
        // Said now, before the site is listed; create_job checks again where it counts.
        let running = self.storage.runs_on_site(&site_url).await?;
        let limits = crate::service::limits::Limits {
            runs_per_site: self.runs_per_site,
            ..Default::default()
        };
        site_has_room(running, &limits, &site_url)?;
        // The preview may be minutes old: act only on users that still match what was shown.
        let fresh = list_site(site.provider.as_ref()).await?;
        if !self.storage.claim_preview(team_id, &record.id).await? {
            return Err(ConsoleError::new(
                "This preview was already used to start a run; make a new preview.",
            ));
        }
        // An account chosen (or a choice undone) after the preview was read above changed its
        // rows and phrase: the run must be the preview as confirmed, so it starts nothing.
        // Once claimed, the rows can no longer change.
        let now = self.storage.preview(team_id, &record.id).await?;
        if now.map(|now| now.summary_json) != Some(record.summary_json.clone()) {
            self.storage.release_preview(team_id, &record.id).await?;
            return Err(ConsoleError::new(
                "This preview changed while the run was starting (an account was chosen or a \
                 choice undone): check its rows and type its phrase again.",
            ));
        }
        let mut policy = policy_for(
            &site.record,
            stored.preview.demote_privileged,
            actor.email(),
        );
        // The person who asked for the run is as protected as the one who started it.
        if let Some(request) = approval {
            policy
                .protected_emails
                .push(request.requester_email.clone());
        }
        let checked = recheck(&stored.preview, &fresh, &policy);
        let items = planned_in_preview_order(&stored, checked.targets, checked.changed);
        // The run needs of the preview only each selected user's check: the rows go before
        // the job is written, so a large preview and the fresh listing are not held together
        // with the job's users.
        let options = RunOptions {
            action: record.action,
            demote_privileged: stored.preview.demote_privileged,
            ..self.run_options.clone()
        };
        let checks = target_checks(&stored.preview, options.demote_privileged);
        let (action, confirmed) = (record.action, record.id.clone());
        let delete_on = crate::service::previews::headline(record)?.delete_on;
        drop(stored);
        let created_at = chrono::Utc::now();
        let approver = actor.name(site.record.operator_email.as_deref());
        let mut job = NewJob {
            id: JobId::new(uuid::Uuid::new_v4().to_string()),
            team_id,
            // Started by the person who asked; the approver is on the approval.
            created_by: match approval {
                Some(request) => request.requested_by.clone(),
                None => actor.name(site.record.operator_email.as_deref()),
            },
            created_at,
            site_url: site.endpoint.site_url().to_string(),
            action,
            preview_id: confirmed,
            connection: site.job_connection(),
            items,
            runs_per_site: self.runs_per_site,
            audit: Vec::new(),
            approval: approval.map(|_| RunApproval {
                by: approver.clone(),
                at: created_at,
            }),
            undo: None,
        };
        if action == app::model::Action::DeactivateThenDelete {
            let settings = self.storage.team_settings(team_id).await?;
            let zone = crate::service::retention::team_zone(self.storage.as_ref(), team_id).await?;
            job.undo = Some(crate::service::undo::window_for(
                &job,
                (delete_on.as_deref(), zone),
                settings.ask_again_at_date,
                &fresh,
            )?);
        }
        job.audit = audit::run_start_entries(&job, approval.map(|request| (request, approver)));
        match self.storage.create_job(&job).await {
            Ok(()) => {}
            // Another run on this site was written since the check above (on this console or
            // another replica): the preview was not used, so it is given back.
            Err(StorageError::SiteBusy { running, .. }) => {
                self.storage
                    .release_preview(team_id, &job.preview_id)
                    .await?;
                site_has_room(running, &limits, &job.site_url)?;
            }
            // The request was declined, withdrawn or expired while the site was listed:
            // nothing was written, and the preview is given back as above.
            Err(StorageError::ApprovalNotAwaiting(_)) => {
                self.storage
                    .release_preview(team_id, &job.preview_id)
                    .await?;
                let request = self.storage.approval(team_id, &job.preview_id).await?;
                return Err(crate::service::approvals::not_approved_in_time(
                    request.as_ref(),
                    created_at,
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.save_listing(&job.id, &fresh).await;
        // The listing is on disk and the users are in the database: neither copy is needed
        // while the runner starts.
        drop(fresh);
        let job_id = job.id;
        drop(job.items);
        // Another replica's periodic claim may have taken the new job in the meantime: then
        // that replica drives it (re-reading every user first), and this one does not.
        if let Some((_, lease)) = self.claim(Some(&job_id)).await?.pop() {
            let rereads = Rereads::new(checks, policy);
            self.launch(
                team_id,
                &job_id,
                lease,
                site.provider,
                options,
                false,
                rereads,
            )
            .await?;
        }
        self.job_record(team_id, &job_id).await
    }

    /// Keeps the listing in the database, where every replica finds it, gzipped as it is
    /// written (a 50,000-user site's JSON is about 15 MB; held whole next to the fresh listing
    /// it raised the start's peak memory by 39 MB). The run goes on without it if it cannot
    /// be kept (it is a report, not a record the run needs).
    pub(super) async fn save_listing(&self, job_id: &JobId, users: &[SiteUser]) {
        let gzipped = (|| {
            let mut gzip =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            crate::engine::report::write_all_users_json(users, &mut gzip)?;
            gzip.finish()
        })();
        let kept = match gzipped {
            Ok(gzipped) => self
                .storage
                .save_listing(job_id, &gzipped)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = kept {
            tracing::warn!(job_id = %job_id, error = %e, "could not keep the listing snapshot");
        }
    }

    pub(super) async fn job_record(
        &self,
        team_id: TeamId,
        job_id: &JobId,
    ) -> Result<JobRecord, ConsoleError> {
        self.storage
            .job(team_id, job_id)
            .await?
            .ok_or_else(|| ConsoleError::new("This run does not exist."))
    }
}

/// Every selected preview row's item, in the preview's order.
fn planned_in_preview_order(
    stored: &StoredPreview,
    targets: Vec<RunTarget>,
    changed: Vec<ItemResult>,
) -> Vec<PlannedItem> {
    let mut by_account: HashMap<String, PlannedItem> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for target in targets {
        order.push(target.account_id.clone());
        by_account.insert(target.account_id.clone(), PlannedItem::Run(target));
    }
    for result in changed {
        order.push(result.account_id.clone());
        by_account.insert(result.account_id.clone(), PlannedItem::Settled(result));
    }
    let mut items = Vec::with_capacity(by_account.len());
    for row in stored.preview.selected() {
        let key = row.account_id.clone().unwrap_or_else(|| row.input.clone());
        if let Some(item) = by_account.remove(&key) {
            items.push(item);
        }
    }
    // Anything recheck returned that no row names (never expected) still goes in, last.
    for key in order {
        if let Some(item) = by_account.remove(&key) {
            items.push(item);
        }
    }
    items
}
