//! A request as the routes get it: its head within the limits, and its body read whole
//! before any route (or the security middleware) looks at it.
//!
//! Why the body is read first: a client may send the head and the body in two
//! writes (Python's http.client does, so `requests` does). A route that answers without
//! reading the body (start, stop, every refusal) would otherwise have its answer written
//! while the body is still on its way; hyper then closes the connection, and the client's
//! write of the body fails with a broken pipe. Reading it first costs nothing: a body is at
//! most [`BODY_LIMIT`] bytes, and the routes that take one read it whole anyway.
//!
//! Why a deadline on the body: hyper's header-read timeout covers the head only. A client
//! that sends a head announcing a body and then a few bytes of it would otherwise hold its
//! connection for ever. With [`BODY_TIMEOUT`], a whole request takes at most
//! [`super::listener::HEAD_TIMEOUT`] + [`BODY_TIMEOUT`] (20 s).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};

use super::api::BODY_LIMIT;
use super::error::ApiError;

/// How long a request's body may take to arrive, from the end of its head.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest URL (path and query) accepted; 414 past it.
pub const MAX_URI: usize = 8 * 1024;

/// The largest request head (request line and headers) accepted; hyper answers 431 past it.
pub const MAX_HEAD: usize = 32 * 1024;

/// The most header lines a request may have (hyper's own default); hyper answers 431 past it.
pub const MAX_HEADERS: usize = 100;

/// The message of a 413.
pub fn too_large_message() -> String {
    format!("the request body is larger than {BODY_LIMIT} bytes: send one program at a time")
}

/// An error answer after which the connection is closed: the rest of the request (a body
/// not read, or a body that never came) is not worth reading.
fn closing(status: StatusCode, message: String) -> Response {
    ApiError::new(status, message).closing().into_response()
}

/// Checks the head's limits and reads the body whole, within [`BODY_TIMEOUT`] and
/// [`BODY_LIMIT`].
///
/// # Errors
/// The answer to send instead of handling the request: 414 for a URL over [`MAX_URI`], 413
/// for a body over [`BODY_LIMIT`] (announced by `Content-Length`: refused before a byte of
/// it is read), 408 for a body that did not arrive in time, 400 for one that could not be
/// read (a broken chunked encoding, a connection closed half-way).
pub async fn read_whole(req: Request<Incoming>) -> Result<Request<Body>, Response> {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len())
        + req.uri().authority().map_or(0, |a| a.as_str().len());
    if uri_len > MAX_URI {
        return Err(closing(
            StatusCode::URI_TOO_LONG,
            format!(
                "the URL is {uri_len} bytes long, longer than the {MAX_URI} accepted: program names are at most 64 characters, and no query needs more"
            ),
        ));
    }
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return Ok(Request::from_parts(parts, Body::empty()));
    }
    // hyper has checked the header (one decimal number, or equal copies of it).
    if body
        .size_hint()
        .exact()
        .is_some_and(|n| n > BODY_LIMIT as u64)
    {
        return Err(closing(StatusCode::PAYLOAD_TOO_LARGE, too_large_message()));
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, BODY_LIMIT).collect()).await {
        Ok(Ok(collected)) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            too_large_message(),
        )),
        Ok(Err(e)) => Err(closing(
            StatusCode::BAD_REQUEST,
            format!("the request body could not be read ({e}): send it whole, as Content-Length says or in well-formed chunks"),
        )),
        Err(_) => Err(closing(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s of the head: send the whole body at once",
                BODY_TIMEOUT.as_secs()
            ),
        )),
    }
}
