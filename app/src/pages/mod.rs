//! One module a screen of the admin's path.

mod overview;
mod steps;

pub use overview::Overview;
pub use steps::{Choose, Connect, History, NotFound, PreviewPage, RunPage};
