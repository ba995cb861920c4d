//! The one error type of the plain routes: a status and the admin's words, sent as plain text.

use app::backend::{ConsoleError, ConsoleErrorKind};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, message: &str) -> HttpError {
        HttpError {
            status,
            message: message.to_string(),
        }
    }

    pub fn not_found(what: &str) -> HttpError {
        HttpError {
            status: StatusCode::NOT_FOUND,
            message: format!("{what} does not exist."),
        }
    }

    pub fn unavailable(message: &str) -> HttpError {
        HttpError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.to_string(),
        }
    }

    pub fn failed(message: &str) -> HttpError {
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.to_string(),
        }
    }
}

/// The service's answer, with the status that says what kind of no it is.
impl From<ConsoleError> for HttpError {
    fn from(e: ConsoleError) -> HttpError {
        let status = match e.kind {
            ConsoleErrorKind::NotFound => StatusCode::NOT_FOUND,
            ConsoleErrorKind::Refused => StatusCode::CONFLICT,
            ConsoleErrorKind::Failed => StatusCode::INTERNAL_SERVER_ERROR,
            ConsoleErrorKind::Forbidden => StatusCode::FORBIDDEN,
        };
        HttpError {
            status,
            message: e.message,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}
