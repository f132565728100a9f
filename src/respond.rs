//! Building responses and reading bodies, shared by the Worker's handlers and the room.

use crate::error::Result;
use protocol::{ApiError, CloseCode, ErrorCode};
use serde::Serialize;
use worker::{Headers, Request, Response, WebSocketPair};

fn headers(content_type: &str) -> Headers {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    let _ = headers.set("cache-control", "no-store");
    // Answers are what their content type says: a browser never guesses HTML from JSON.
    let _ = headers.set("x-content-type-options", "nosniff");
    headers
}

pub fn json<T: Serialize>(status: u16, value: &T) -> Result<Response> {
    raw_json(status, serde_json::to_string(value)?)
}

fn json_text(status: u16, body: String) -> worker::Result<Response> {
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers("application/json; charset=utf-8")))
}

/// A response whose JSON was assembled by hand (event pages splice stored event JSON).
pub fn raw_json(status: u16, body: String) -> Result<Response> {
    Ok(json_text(status, body)?)
}

/// The protocol's error body with the code's status.
pub fn error(error: &ApiError) -> worker::Result<Response> {
    json_text(error.status(), error.to_body())
}

/// A 302 to `location` (on this origin, or GitHub's authorize page), setting `cookies`.
pub fn redirect(location: &str, cookies: &[String]) -> Result<Response> {
    let headers = headers("text/plain; charset=utf-8");
    headers.set("location", location)?;
    for cookie in cookies {
        headers.append("set-cookie", cookie)?;
    }
    Ok(Response::empty()?.with_status(302).with_headers(headers))
}

/// 204, setting `cookies`.
pub fn no_content(cookies: &[String]) -> Result<Response> {
    let headers = headers("text/plain; charset=utf-8");
    for cookie in cookies {
        headers.append("set-cookie", cookie)?;
    }
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

pub fn event_stream(response: Response) -> Response {
    let headers = headers("text/event-stream; charset=utf-8");
    let _ = headers.set("x-accel-buffering", "no");
    response.with_headers(headers)
}

/// Reads a body of at most `limit` bytes; a larger one is `too_large` (413).
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>> {
    let too_large = |size: usize| {
        ApiError::new(
            ErrorCode::TooLarge,
            format!("the body is {size} bytes; the limit is {limit}"),
        )
    };
    if let Some(length) = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok())
    {
        if length > limit {
            return Err(too_large(length).into());
        }
    }
    let body = req.bytes().await?;
    if body.len() > limit {
        return Err(too_large(body.len()).into());
    }
    Ok(body)
}

/// Accepts a WebSocket only to close it at once with `code`: browsers cannot read an HTTP
/// status from a failed upgrade, but they can read a close code and reason.
pub fn refuse_socket(code: CloseCode, reason: &str) -> Result<Response> {
    let pair = WebSocketPair::new()?;
    pair.server.accept()?;
    pair.server.close(Some(code.code()), Some(reason))?;
    Ok(Response::from_websocket(pair.client)?)
}
