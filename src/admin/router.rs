//! The admin listener's routing, without I/O: a request (method, path, query) goes to the
//! section mounted at the longest matching path prefix (`/incidents`, `/assets`, the
//! silences API), which answers with a [`Reply`]. The server adds the
//! security headers every reply carries.

use std::fmt::Write as _;

/// What a section is given of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminRequest<'a> {
    /// As sent, upper case: `GET`, `HEAD`, `POST`, …
    pub method: &'a str,
    /// The path, without query or fragment.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The `Authorization` header, when sent.
    pub authorization: Option<&'a str>,
    /// The body (bounded by the server; empty for most requests).
    pub body: &'a [u8],
}

impl<'a> AdminRequest<'a> {
    /// Splits a request target (`/incidents?older_than=…`) into path and query.
    pub fn new(method: &'a str, target: &'a str) -> AdminRequest<'a> {
        let target = target.split('#').next().unwrap_or("");
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        AdminRequest {
            method,
            path,
            query,
            authorization: None,
            body: &[],
        }
    }

    /// The raw value of `name` in the query (`a=1&b=2`), not percent-decoded.
    pub fn query_value(&self, name: &str) -> Option<&'a str> {
        self.query?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// Every raw value of `name` in the query, in order (`filter=a&filter=b`).
    pub fn query_values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n
    where
        'a: 'n,
    {
        self.query
            .unwrap_or("")
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(move |(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}

/// An answer, decided without I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// The `Location` header of a redirect.
    pub location: Option<&'static str>,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            content_type,
            body,
            allow: None,
            location: None,
        }
    }

    pub fn html(status: u16, body: String) -> Reply {
        Reply::new(status, "text/html; charset=utf-8", body)
    }

    pub fn method_not_allowed(allow: &'static str) -> Reply {
        let mut reply = Reply::new(
            405,
            "text/plain; charset=utf-8",
            format!("method not allowed (allowed: {allow})\n"),
        );
        reply.allow = Some(allow);
        reply
    }

    pub fn redirect(location: &'static str) -> Reply {
        let mut body = String::new();
        let _ = writeln!(body, "see {location}");
        let mut reply = Reply::new(303, "text/plain; charset=utf-8", body);
        reply.location = Some(location);
        reply
    }
}

/// A part of the admin listener: everything under one path prefix.
pub trait AdminRoutes: Send + Sync {
    /// Answers `request`; `rest` is its path after the prefix (`""` or starting with `/`).
    fn respond(&self, request: &AdminRequest<'_>, rest: &str) -> Reply;
}

/// The admin listener's sections by path prefix; `/` leads to `home`.
pub struct Router {
    home: &'static str,
    sections: Vec<(&'static str, Box<dyn AdminRoutes>)>,
}

impl Router {
    /// A router whose `/` redirects to `home`.
    pub fn new(home: &'static str) -> Router {
        Router {
            home,
            sections: Vec::new(),
        }
    }

    /// Serves `routes` under `prefix` (`/incidents`: the path `/incidents` and everything
    /// below `/incidents/`).
    pub fn mount(mut self, prefix: &'static str, routes: impl AdminRoutes + 'static) -> Router {
        self.sections.push((prefix, Box::new(routes)));
        // Longest first, so a nested prefix wins over its parent.
        self.sections
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }

    pub fn respond(&self, request: &AdminRequest<'_>) -> Reply {
        if request.path == "/" {
            return Reply::redirect(self.home);
        }
        for (prefix, routes) in &self.sections {
            if let Some(rest) = request.path.strip_prefix(prefix) {
                if rest.is_empty() || rest.starts_with('/') {
                    return routes.respond(request, rest);
                }
            }
        }
        super::pages::error_page(404, "Not found", "Nothing is served at this path.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(&'static str);

    impl AdminRoutes for Echo {
        fn respond(&self, request: &AdminRequest<'_>, rest: &str) -> Reply {
            Reply::new(
                200,
                "text/plain",
                format!("{} {} {rest}", self.0, request.method),
            )
        }
    }

    fn router() -> Router {
        Router::new("/incidents")
            .mount("/incidents", Echo("incidents"))
            .mount("/api/v2/silences", Echo("silences"))
            .mount("/api", Echo("api"))
    }

    fn body(method: &str, target: &str) -> (u16, String) {
        let reply = router().respond(&AdminRequest::new(method, target));
        (reply.status, reply.body)
    }

    #[test]
    fn requests_go_to_the_section_of_the_longest_prefix() {
        assert_eq!(body("GET", "/incidents"), (200, "incidents GET ".into()));
        assert_eq!(
            body("GET", "/incidents/abc?x=1"),
            (200, "incidents GET /abc".into())
        );
        assert_eq!(
            body("POST", "/api/v2/silences/1"),
            (200, "silences POST /1".into())
        );
        assert_eq!(body("GET", "/api/v1"), (200, "api GET /v1".into()));
    }

    #[test]
    fn a_prefix_matches_whole_segments_only_and_root_redirects_home() {
        assert_eq!(body("GET", "/incidentsx").0, 404);
        assert_eq!(body("GET", "http://h/incidents").0, 404);
        let home = router().respond(&AdminRequest::new("GET", "/"));
        assert_eq!((home.status, home.location), (303, Some("/incidents")));
    }

    #[test]
    fn query_values_are_found_by_name() {
        let request = AdminRequest::new("GET", "/incidents?a=1&older_than=x-2#frag");
        assert_eq!(request.path, "/incidents");
        assert_eq!(request.query_value("older_than"), Some("x-2"));
        assert_eq!(request.query_value("b"), None);
    }
}
