//! Logging that never carries a secret: callers pass ids, routes, codes and counts, not keys,
//! tokens, bodies or query strings (which may hold a participant token).
//!
//! Every line is one JSON object (what `wrangler tail` and Workers Logs index): `error` and
//! `info` carry a sentence; [`request`] is the Worker's line per request, [`room`] a room's
//! line per action. The request id of the Worker request being served is kept by
//! [`WithRequestId`] while its future runs, so the rooms it calls log the same id.

use serde_json::{json, Value};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// The header that carries the request id from the Worker to a room.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

thread_local! {
    static CURRENT_REQUEST: RefCell<Option<Rc<str>>> = const { RefCell::new(None) };
}

/// The id of the Worker request whose future is running now, if any.
pub fn current_request_id() -> Option<Rc<str>> {
    CURRENT_REQUEST.with_borrow(|id| id.clone())
}

/// Runs `inner` with `id` as the current request id during each of its polls, so requests
/// interleaved in one isolate never see each other's id.
pub struct WithRequestId<F> {
    id: Rc<str>,
    inner: Pin<Box<F>>,
}

impl<F: Future> WithRequestId<F> {
    pub fn new(id: &str, inner: F) -> Self {
        WithRequestId {
            id: Rc::from(id),
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for WithRequestId<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let id = self.id.clone();
        let outer = CURRENT_REQUEST.with_borrow_mut(|current| current.replace(id));
        let polled = self.inner.as_mut().poll(cx);
        CURRENT_REQUEST.with_borrow_mut(|current| *current = outer);
        polled
    }
}

/// The Worker's line for one request: `route` is the endpoint's pattern, never the URL.
pub struct RequestLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub session_id: Option<&'a str>,
    pub status: u16,
    pub duration_ms: u64,
}

pub fn request(line: &RequestLine) {
    emit(
        "info",
        json!({
            "kind": "request",
            "request_id": line.request_id,
            "method": line.method,
            "route": line.route,
            "session_id": line.session_id,
            "status": line.status,
            "duration_ms": line.duration_ms,
        }),
    );
}

/// A room's line for one action (a request from the Worker, the alarm, a prompt's end);
/// `fields` adds what the action has (ids, statuses, counts).
pub fn room(action: &str, session_id: Option<&str>, request_id: Option<&str>, fields: Value) {
    let mut line = json!({
        "kind": "room",
        "action": action,
        "session_id": session_id,
        "request_id": request_id,
    });
    if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    emit("info", line);
}

pub fn error(message: &str) {
    emit("error", json!({ "message": message }));
}

pub fn info(message: &str) {
    emit("info", json!({ "message": message }));
}

fn emit(level: &str, mut line: Value) {
    if let Some(fields) = line.as_object_mut() {
        fields.insert("level".into(), Value::from(level));
    }
    print(level, &line.to_string());
}

#[cfg(target_arch = "wasm32")]
fn print(level: &str, line: &str) {
    match level {
        "error" => worker::console_error!("{line}"),
        _ => worker::console_log!("{line}"),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn print(_level: &str, line: &str) {
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{RawWaker, RawWakerVTable, Waker};

    fn noop_waker() -> Waker {
        fn clone(_: *const ()) -> RawWaker {
            RawWaker::new(std::ptr::null(), &VTABLE)
        }
        fn noop(_: *const ()) {}
        static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
        // SAFETY: every function of the table ignores the data pointer.
        unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
    }

    /// A future that is pending once, and records the current id at each poll.
    struct Probe {
        seen: Rc<RefCell<Vec<Option<String>>>>,
        polls: u32,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            let id = current_request_id().map(|id| id.to_string());
            self.seen.borrow_mut().push(id);
            self.polls += 1;
            if self.polls < 2 {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }
    }

    #[test]
    fn interleaved_requests_keep_their_own_ids() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let probe = || Probe {
            seen: seen.clone(),
            polls: 0,
        };
        let mut a = WithRequestId::new("a", probe());
        let mut b = WithRequestId::new("b", probe());
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut a).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut b).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut a).poll(&mut cx).is_ready());
        assert!(Pin::new(&mut b).poll(&mut cx).is_ready());
        let ids: Vec<_> = seen
            .borrow()
            .iter()
            .map(|id| id.as_deref().map(str::to_owned))
            .collect();
        let want = |s: &str| Some(s.to_owned());
        assert_eq!(ids, [want("a"), want("b"), want("a"), want("b")]);
        assert_eq!(current_request_id(), None, "nothing is left behind");
    }
}
