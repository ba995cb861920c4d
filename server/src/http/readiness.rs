//! `GET /readyz`, and the console's first seconds: the port is open before the database is
//! (migrations can take a while on a large PostgreSQL database), so a load balancer asking
//! whether to send traffic hears "not yet" (503) instead of a refused connection, and every
//! other request is answered 503 until the console is built.
//!
//! Readiness differs from `/healthz` in what it promises: 200 means "send admins here" (the
//! console is built and its database answers now); 503 names the check that failed
//! ([`NotReady`]): still migrating, the database unreachable, or shutting down. Neither says
//! anything about SCIM sites.

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
    /// Set once the process is told to stop (`super::shutdown`): from then on `/readyz` says
    /// so, so the load balancer sends new people to another replica while this one hands its
    /// runs back.
    pub shutting_down: super::shutdown::ShuttingDown,
}

/// Why the console is not ready: the check `/readyz` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The database is opening and migrating (the console is not built yet).
    Starting,
    /// The database did not answer within [`DATABASE_ANSWER`].
    Database,
    /// The process was told to stop.
    ShuttingDown,
}

impl NotReady {
    /// `status` (kept from the first version of this answer), the failing check, and why.
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            NotReady::Starting => (
                "starting",
                "migrations",
                "the database is being opened and migrated",
            ),
            NotReady::Database => (
                "database unreachable",
                "database",
                "the database did not answer within 3 seconds",
            ),
            NotReady::ShuttingDown => (
                "shutting down",
                "shutting down",
                "this console was told to stop and is handing its runs over",
            ),
        }
    }

    fn response(self) -> Response {
        let (status, check, reason) = self.words();
        let body = Json(serde_json::json!({ "status": status, "check": check, "reason": reason }));
        match self {
            NotReady::Starting => (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "1")],
                body,
            )
                .into_response(),
            _ => (StatusCode::SERVICE_UNAVAILABLE, body).into_response(),
        }
    }
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
                        None => NotReady::Starting.response(),
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

/// `GET /readyz`: 200 when the console is built and its database answers, else 503 naming
/// the failing check.
async fn readyz(State(starting): State<Starting>) -> Response {
    match readiness(&starting).await {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(why) => why.response(),
    }
}

/// The first check that fails, in the order a load balancer cares about.
async fn readiness(starting: &Starting) -> Result<(), NotReady> {
    if starting.shutting_down.is_set() {
        return Err(NotReady::ShuttingDown);
    }
    let console = starting.built.get().ok_or(NotReady::Starting)?;
    match tokio::time::timeout(DATABASE_ANSWER, console.service.database_health()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database did not answer");
            Err(NotReady::Database)
        }
        Err(_) => {
            tracing::warn!("readiness: the database took too long to answer");
            Err(NotReady::Database)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn ask(router: Router) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .uri("/readyz")
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn readiness_names_the_check_that_fails() {
        let starting = Starting::default();
        let (status, body) = ask(starting.router()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["check"], "migrations", "{body}");
        assert_eq!(body["status"], "starting", "{body}");

        // Told to stop: said before anything else, even while starting.
        starting.shutting_down.begin();
        let (status, body) = ask(starting.router()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["check"], "shutting down", "{body}");
    }

    #[test]
    fn every_reason_has_its_own_words() {
        let all = [
            NotReady::Starting,
            NotReady::Database,
            NotReady::ShuttingDown,
        ];
        let checks: std::collections::HashSet<_> = all.iter().map(|r| r.words().1).collect();
        assert_eq!(checks.len(), all.len());
        assert_eq!(NotReady::Database.words().1, "database");
    }
}
