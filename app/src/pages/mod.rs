//! One module a screen of the admin's path.

// Rendered by the server only (plain forms and links, no script): see `shell::static_shell`.
#[cfg(feature = "ssr")]
mod audit;
mod choose;
mod connect;
mod deactivated_dates;
#[cfg(feature = "ssr")]
mod history;
#[cfg(feature = "hydrate")]
mod live_stream;
mod overview;
mod parts;
#[cfg(feature = "ssr")]
mod people;
mod preview;
mod requests;
mod run;
mod steps;
mod times;
mod waiting;

#[cfg(feature = "ssr")]
pub use audit::AuditTrail;
pub use choose::Choose;
pub use connect::Connect;
#[cfg(feature = "ssr")]
pub use history::History;
pub use overview::Overview;
#[cfg(feature = "ssr")]
pub use people::{Account, Join, Reset, Setup, SignIn, Team, Teams};
pub use preview::PreviewPage;
pub use run::RunPage;
pub use steps::NotFound;
pub use times::BrowserClock;
