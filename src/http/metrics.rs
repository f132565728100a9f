//! `GET /v1/metrics?from=&to=&repo=`: usage and speed for the people who run the coordinator,
//! with the admin key or as a user whose scopes include `metrics`.

use super::auth::Principal;
use crate::error::Result;
use crate::index::Index;
use crate::metrics::{assemble, Window};
use crate::respond;
use crate::time::now_ms;
use protocol::{ApiError, ErrorCode};
use worker::Response;

pub async fn get(index: &Index, principal: Principal, query_string: &str) -> Result<Response> {
    match principal {
        Principal::Admin => {}
        Principal::User(user) if user.scopes.metrics => {}
        Principal::User(_) => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "metrics need the admin key or a user with the metrics scope",
            )
            .into())
        }
    }
    let now = now_ms();
    let window = Window::parse(query_string, now)?;
    let rows = index.metrics_rows(&window, now).await?;
    respond::json(200, &assemble(&window, &rows, now))
}
