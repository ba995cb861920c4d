//! `GET /readyz`, and the console's first seconds: the port is open before the database is
//! (migrations can take a while on a large PostgreSQL database), so a load balancer asking
//! whether to send traffic hears "not yet" (503) instead of a refused connection, and every
//! other request is answered 503 until the console is built.
//!
//! Readiness differs from `/healthz` in what it promises: 200 means "send admins here" (the
//! console is built and its database answers now); 503 means "starting" or "database
//! unreachable". Neither says anything about SCIM sites.

use crate::service::Console;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

/// How long the database may take to answer a readiness check before it counts as down.
const DATABASE_ANSWER: Duration = Duration::from_secs(3);

/// The console once it is built: its routes, and the service whose database is checked.
struct Built {
    routes: Router,
    service: Arc<Console>,
}

/// Empty while the database opens and migrates; filled once, by [`Starting::ready`].
#[derive(Clone, Default)]
pub struct Starting {
    built: Arc<OnceLock<Built>>,
    /// Set when the console is told to stop: `/readyz` says so (`super::shutdown`).
    pub shutting_down: super::shutdown::ShuttingDown,
}

impl Starting {
    /// The router to serve from the start: `/readyz`, then everything else once built.
    pub fn router(&self) -> Router {
        let built = self.built.clone();
        Router::new()
            .route("/readyz", get(readyz))
            .with_state(self.clone())
            .fallback(move |request: Request| {
                let built = built.clone();
                async move {
                    match built.get() {
                        Some(console) => match console.routes.clone().oneshot(request).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        },
                        None => starting(),
                    }
                }
            })
    }

    /// Hands requests to the built console from now on.
    pub fn ready(&self, routes: Router, service: Arc<Console>) {
        if self.built.set(Built { routes, service }).is_err() {
            tracing::warn!("the console was marked ready twice; the first one stays");
        }
    }
}

fn starting() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("retry-after", "1")],
        Json(serde_json::json!({ "status": "starting" })),
    )
        .into_response()
}

/// `GET /readyz`: 200 when the console is built and its database answers, 503 otherwise
/// (and 503 "shutting down" once it was told to stop).
async fn readyz(State(starting): State<Starting>) -> Response {
    if starting.shutting_down.is_set() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "shutting down" })),
        )
            .into_response();
    }
    let Some(console) = starting.built.get() else {
        return self::starting();
    };
    let health = tokio::time::timeout(DATABASE_ANSWER, console.service.database_health()).await;
    match health {
        Ok(Ok(_)) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database did not answer");
            unreachable_database()
        }
        Err(_) => {
            tracing::warn!("readiness: the database took too long to answer");
            unreachable_database()
        }
    }
}

fn unreachable_database() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "status": "database unreachable" })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn readyz_of(starting: &Starting) -> (StatusCode, String) {
        let request = Request::get("/readyz")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = starting.router().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_console_told_to_stop_is_not_ready() {
        let starting = Starting::default();
        assert_eq!(readyz_of(&starting).await.1, r#"{"status":"starting"}"#);
        starting.shutting_down.begin();
        let (status, body) = readyz_of(&starting).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, r#"{"status":"shutting down"}"#);
    }
}
