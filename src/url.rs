//! The parts of a request's URL the coordinator reads (origin, path, query), taken from the
//! runtime's own serialized URL. The runtime has parsed and normalised it already (WHATWG), so
//! the `url` crate's parser, and the Unicode tables it brings, stay out of the wasm. Pure.

/// A request URL as the runtime serialises it: `scheme://host[:port]/path[?query][#fragment]`.
pub struct RequestUrl {
    text: String,
    /// Where the path starts (the end of the origin), the query's `?`, and the end of the query.
    path_at: usize,
    query_at: Option<usize>,
    end: usize,
}

impl RequestUrl {
    pub fn parse(text: String) -> RequestUrl {
        let after_scheme = text.find("://").map_or(0, |i| i + 3);
        let end = text.find('#').unwrap_or(text.len());
        let path_at = text[after_scheme..end]
            .find(['/', '?'])
            .map_or(end, |i| after_scheme + i);
        let query_at = text[path_at..end].find('?').map(|i| path_at + i);
        RequestUrl {
            text,
            path_at,
            query_at,
            end,
        }
    }

    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub fn origin(&self) -> &str {
        &self.text[..self.path_at]
    }

    /// The path, still percent-encoded; `/` when there is none.
    pub fn path(&self) -> &str {
        match &self.text[self.path_at..self.query_at.unwrap_or(self.end)] {
            "" => "/",
            path => path,
        }
    }

    /// The query without its `?`; empty when there is none.
    pub fn query(&self) -> &str {
        self.query_at.map_or("", |at| &self.text[at + 1..self.end])
    }

    pub fn is_https(&self) -> bool {
        self.text.starts_with("https://")
    }

    /// The origin without its scheme: `host[:port]`.
    pub fn host(&self) -> &str {
        let origin = self.origin();
        origin.find("://").map_or(origin, |i| &origin[i + 3..])
    }
}

/// The URL of a request.
#[cfg(target_arch = "wasm32")]
pub fn of(req: &worker::Request) -> RequestUrl {
    RequestUrl::parse(req.inner().url())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, origin: &str, path: &str, query: &str) {
        let parsed = RequestUrl::parse(url.to_owned());
        assert_eq!(
            (parsed.origin(), parsed.path(), parsed.query()),
            (origin, path, query),
            "{url}"
        );
    }

    #[test]
    fn parts() {
        check(
            "http://127.0.0.1:8787/v1/me",
            "http://127.0.0.1:8787",
            "/v1/me",
            "",
        );
        check(
            "https://c.example/v1/sessions/x/ws?token=a.b&since=3",
            "https://c.example",
            "/v1/sessions/x/ws",
            "token=a.b&since=3",
        );
        check(
            "https://c.example/?a=/b#frag?x",
            "https://c.example",
            "/",
            "a=/b",
        );
        check("https://c.example?q=1", "https://c.example", "/", "q=1");
        check("https://c.example", "https://c.example", "/", "");
        check(
            "https://room.internal/events?since=1",
            "https://room.internal",
            "/events",
            "since=1",
        );
        let url = RequestUrl::parse("https://c.example:8443/x".into());
        assert!(url.is_https());
        assert_eq!(url.host(), "c.example:8443");
        assert!(!RequestUrl::parse("http://h/x".into()).is_https());
    }
}
