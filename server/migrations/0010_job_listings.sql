-- The site's user list taken when a run started (the run's "all users" report, gzipped
-- JSON), kept in the database so every replica can serve it. Runs started before this were written to the data
-- folder of the console that started them (`jobs/{id}/all_users.json`), which is still read.
CREATE TABLE job_listings (
    job_id      TEXT  PRIMARY KEY REFERENCES jobs(id),
    users_json  BLOB  NOT NULL
);
