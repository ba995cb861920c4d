//! Offboard's shared vocabulary: the plain data the browser and the server both speak (ids,
//! site users, preview rows, run states and outcomes, reports, teams, the audit trail).
//!
//! Why a crate of its own: the server's lower floors (engine, SCIM, storage) need these types
//! but nothing of the user interface, so they depend on this crate and never on `app` (Leptos).
//! It holds no Leptos and no tokio, only serde (and sqlx behind the `sqlx` feature, for the
//! server's storage), so the WASM bundle carries nothing it does not already use.
//!
//! Why it lives at `app/model/`: the repository keeps its top-level shape (Cargo.toml, app/,
//! server/, style/, public/, end2end/), and the shared vocabulary sits beside the browser crate
//! that also uses it. `app` re-exports these modules, so its pages name them as before.
//!
//! Enum names (in addresses, forms and the database) are derived once, by strum, and read
//! through [`Named`]: see `names.rs` for why.

pub mod audit;
pub mod deletion;
pub mod hidden;
pub mod ids;
pub mod names;
pub mod report;
pub mod team;

pub use names::Named;
