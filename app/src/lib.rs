//! Offboard's console: the Leptos UI, its server functions, and the types shared with the browser.
// The pages' view types nest deeply; the optimised WASM build needs more than the default 128.
#![recursion_limit = "256"]

pub mod api;
pub mod audit;
pub mod backend;
pub mod confirm;
mod pages;
mod shell;
pub mod team;

// The shared vocabulary (crate `model`, at app/model/) under the names the pages have always used.
pub use ::model::deletion as model;
pub use ::model::{hidden, ids, Named};
pub use shell::{shell, App};
#[cfg(feature = "ssr")]
pub use shell::{static_shell, StaticApp};

/// Entry point of the WASM bundle: attaches the browser to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // Panic messages in the browser console help while developing; the release bundle
    // (panic = "abort", no debug assertions) leaves the hook out to stay under its size budget.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
