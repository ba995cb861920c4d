//! Offboard's console: the Leptos UI, its server functions, and the types shared with the browser.

pub mod model;
