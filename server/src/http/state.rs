//! What every handler may reach: the service (never storage directly), the Leptos options and
//! the caps on live-progress streams.

use super::events::WatcherSlots;
use crate::service::Console;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub service: Arc<Console>,
    /// Caps on open live-progress streams.
    pub watchers: Arc<WatcherSlots>,
    /// `--public-url`: the address links (invitations, resets) are made with.
    pub public_url: Option<url::Url>,
    /// Single sign-on, when `--oidc-issuer` is set.
    pub sso: Option<Arc<crate::sso::SsoClient>>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> LeptosOptions {
        state.leptos_options.clone()
    }
}
