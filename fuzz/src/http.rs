//! What the Worker reads from a request line: query strings, the route of a method and path,
//! the room's internal routes, and the session list's cursor.

use crate::input::text_fields;
use coordinator::http::route::{is_session_id, resolve, Endpoint};
use coordinator::http::{cursor as session_cursor, query as queries};
use coordinator::room::api::RoomRoute;
use protocol::ErrorCode;

/// The parameters the Worker reads.
const NAMES: &[&str] = &["since", "limit", "after_seq", "token", "cursor", "deep"];

/// `coordinator::http::query` on any query string.
///
/// - a number parameter that is accepted is below 2^53 and is what the parameter says;
/// - a page size is within its bounds; a refusal is `invalid_field`;
/// - a value written by a browser's encoder reads back as itself.
pub fn query(data: &[u8]) {
    let Some([q, value]) = text_fields(data, 2).and_then(|f| <[&str; 2]>::try_from(f).ok()) else {
        return;
    };
    for name in NAMES {
        let raw = queries::param(q, name);
        match queries::u64_param(q, name) {
            Ok(Some(n)) => {
                assert!(n < 1 << 53, "{name}={n}");
                assert_eq!(raw.as_deref().map(str::parse::<u64>), Some(Ok(n)));
            }
            Ok(None) => assert!(raw.as_deref().is_none_or(str::is_empty)),
            Err(refused) => assert_eq!(refused.code, ErrorCode::InvalidField),
        }
    }
    match queries::limit_param(q, 100, 500) {
        Ok(limit) => assert!((1..=500).contains(&limit), "limit {limit}"),
        Err(refused) => assert_eq!(refused.code, ErrorCode::InvalidField),
    }
    let written = form_urlencoded::Serializer::new(String::new())
        .append_pair("other", "x")
        .append_pair("token", value)
        .finish();
    assert_eq!(queries::param(&written, "token").as_deref(), Some(value));
}

/// `coordinator::http::route::resolve` and `coordinator::room::api::RoomRoute::parse`. Lines:
/// method, path, query.
///
/// - a resolved endpoint's path, written again, resolves to the same endpoint, and a session
///   it names is a session id; a refusal is `not_found` or `method_not_allowed`;
/// - a room route that parses has the method it was asked with, and its own path and query
///   parse back to it.
pub fn route(data: &[u8]) {
    let Some([method, path, query]) =
        text_fields(data, 3).and_then(|f| <[&str; 3]>::try_from(f).ok())
    else {
        return;
    };
    match resolve(method, path) {
        Ok(endpoint) => {
            if let Some(session_id) = endpoint.member_session() {
                assert!(is_session_id(session_id), "{session_id:?}");
            }
            let canonical = endpoint.path();
            assert_eq!(
                resolve(method, &canonical).ok(),
                Some(endpoint),
                "{method} {canonical}"
            );
        }
        Err(refused) => assert!(
            matches!(
                refused.code,
                ErrorCode::NotFound | ErrorCode::MethodNotAllowed
            ),
            "{refused:?}"
        ),
    }
    if let Some(route) = RoomRoute::parse(method, path, query) {
        assert_eq!(route.method(), method);
        let own = route.path();
        let (own_path, own_query) = own.split_once('?').unwrap_or((&own, ""));
        assert_eq!(
            RoomRoute::parse(method, own_path, own_query).as_ref(),
            Some(&route),
            "{own}"
        );
    }
}

/// `coordinator::http::cursor` (`GET /v1/sessions?cursor=`). Lines: a cursor; or a time and
/// an id for the round trip.
///
/// - a cursor that decodes is exactly the cursor of what it decodes to (one spelling each);
/// - any time without `|` and any id encode to a cursor that decodes to them.
pub fn cursor(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let given = text.lines().next().unwrap_or("");
    if let Some((created_at, id)) = session_cursor::decode(given) {
        assert!(!created_at.contains('|'));
        assert_eq!(session_cursor::encode(&created_at, &id), given);
    }
    let (created_at, id) = text.split_once('\n').unwrap_or((text, ""));
    let created_at = created_at.replace('|', "");
    assert_eq!(
        session_cursor::decode(&session_cursor::encode(&created_at, id)),
        Some((created_at.clone(), id.to_owned()))
    );
}
