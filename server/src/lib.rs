//! Offboard's server: the web console's backend and the command-line deletion engine.

pub mod cli;
pub mod config;
pub mod console;
pub mod console_routes;
pub mod data_folder;
pub mod delete_command;
pub mod engine;
pub mod job_feed;
pub mod jobs;
pub mod scim;
pub mod secret;
pub mod storage;
pub mod web;
