//! Offboard's server: the web console's backend and the command-line deletion engine.
//!
//! Floors, from the top (each may use the ones below it, never one above; `make lint` checks
//! it with `scripts/check-layers.py`):
//! - `cli`, `delete_command`, `rotate_key_command`, `check_config_command`: the `offboard`
//!   command;
//! - `http`: routes, forms, live events, downloads, the caller;
//! - `service`: what the console does, per team; the only caller of `storage`;
//! - `storage`: Offboard's records (the trait, SQLite);
//! - `engine`: pure file reading, resolution, listing, the runner, reports;
//! - `scim`: the SCIM protocol (endpoint, HTTP client, what a reply means);
//! - `config`, `secret`, `data_folder`, `metrics`: settings, secrets and figures, used from
//!   any floor above.

pub mod audit_chain;
pub mod check_config_command;
pub mod cli;
pub mod config;
pub mod data_folder;
pub mod delete_command;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod rotate_key_command;
pub mod scim;
pub mod secret;
pub mod service;
pub mod sso;
pub mod storage;
