//! One module a screen of the admin's path.

mod audit;
mod choose;
mod connect;
mod history;
mod overview;
mod parts;
mod people;
mod preview;
mod run;
mod steps;

pub use audit::AuditTrail;
pub use choose::Choose;
pub use connect::Connect;
pub use history::History;
pub use overview::Overview;
pub use people::{Account, Join, Reset, Setup, SignIn, Team, Teams};
pub use preview::PreviewPage;
pub use run::RunPage;
pub use steps::NotFound;
