//! The API's one error type: an HTTP status and a message that says what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error answer: `{"error": "..."}` with a status code.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong and what to do.
    pub message: String,
    /// Whether the connection is closed after the answer (`Connection: close`).
    pub close: bool,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            close: false,
        }
    }

    /// The same error, with the connection closed after it: for a refusal after which the
    /// client should not keep the connection (the rest of a request that was not read, a
    /// slot it should give back).
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 500: the server failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<gosuv::Error> for ApiError {
    fn from(e: gosuv::Error) -> Self {
        use gosuv::Error as E;
        let status = match &e {
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Exists(_) => StatusCode::CONFLICT,
            E::Config(_) | E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::StoppedBeforeRunning(_) => StatusCode::CONFLICT,
            E::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            E::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            E::StartFailed { .. }
            | E::Io { .. }
            | E::Store(_)
            | E::TaskFailed(_)
            | E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<gosuv::ConfigErrors> for ApiError {
    fn from(e: gosuv::ConfigErrors) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let status = r.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            super::request::too_large_message()
        } else {
            r.body_text()
        };
        ApiError::new(status, message)
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(format!("bad query string: {}", r.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut resp = (self.status, Json(body)).into_response();
        if self.close {
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
