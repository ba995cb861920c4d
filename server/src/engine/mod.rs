//! The deletion engine: read the admin's file, resolve it against the site's users, preview,
//! run, report. Pure pieces take values and return values; only `listing`, `connection` and
//! `runner` talk to a [`crate::scim::ScimProvider`].

pub mod classify;
pub mod confirm;
pub mod connection;
pub mod file_input;
pub mod listing;
pub mod report;
pub mod resolve;
pub mod runner;
