//! One module a screen of the admin's path.

mod audit;
mod choose;
mod connect;
mod history;
mod overview;
mod parts;
// Rendered by the server only (plain forms, no script): see `shell::people_shell`.
#[cfg(feature = "ssr")]
mod people;
mod preview;
mod run;
mod steps;

pub use audit::AuditTrail;
pub use choose::Choose;
pub use connect::Connect;
pub use history::History;
pub use overview::Overview;
#[cfg(feature = "ssr")]
pub use people::{Account, Join, Reset, Setup, SignIn, Team, Teams};
pub use preview::PreviewPage;
pub use run::RunPage;
pub use steps::NotFound;
