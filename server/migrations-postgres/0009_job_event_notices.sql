-- Every stored event of a run is announced on the channel `offboard_job_events` (payload: the
-- run's id), so each console replica that LISTENs wakes the browsers following that run at
-- once, not at its next look at the database. PostgreSQL sends it when the transaction
-- commits, and merges identical notices of one transaction (a batch of results is one wake-up).
-- PostgreSQL only: SQLite is one process, whose writes wake its watchers directly.
CREATE FUNCTION offboard_job_event_notice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offboard_job_events', NEW.job_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER job_events_notice AFTER INSERT ON job_events
    FOR EACH ROW EXECUTE FUNCTION offboard_job_event_notice();
