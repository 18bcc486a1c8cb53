//! The silences API on the admin listener, in the shape of Alertmanager's v2 API so its
//! `amtool` works against nightcrier: `GET /api/v2/silences` (with `filter` matchers),
//! `POST /api/v2/silences` (create, or update with `id`), `GET /api/v2/silence/{id}`,
//! `DELETE /api/v2/silence/{id}` (expire), and the `GET /api/v2/status` amtool reads.
//! Writes need `Authorization: Bearer <admin.token>`; with no token configured they are
//! refused.

use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use super::matcher::{quote, Matcher};
use super::store::{ApiMatcher, PostableSilence, SilenceStore, StoreError, StoredSilence};
use crate::admin::router::{AdminRequest, AdminRoutes, Reply};
use crate::config::Secret;

const JSON: &str = "application/json";
/// Largest request body read (the listener refuses longer ones before this runs).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API, mounted at `/api/v2/silences`, `/api/v2/silence` and `/api/v2/status`.
#[derive(Clone)]
pub struct SilenceApi {
    store: Arc<SilenceStore>,
    token: Option<Secret>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GettableSilence<'a> {
    id: &'a str,
    status: State,
    updated_at: Timestamp,
    matchers: &'a [ApiMatcher],
    starts_at: Timestamp,
    ends_at: Timestamp,
    created_by: &'a str,
    comment: &'a str,
}

#[derive(Serialize)]
struct State {
    state: &'static str,
}

impl SilenceApi {
    pub fn new(store: Arc<SilenceStore>, token: Option<Secret>) -> SilenceApi {
        SilenceApi { store, token }
    }

    fn respond_at(&self, request: &AdminRequest<'_>, rest: &str, now: Timestamp) -> Reply {
        let id = rest.strip_prefix('/').filter(|id| !id.is_empty());
        let section = request
            .path
            .strip_suffix(rest)
            .unwrap_or(request.path)
            .trim_end_matches('/');
        match (section, request.method, id) {
            ("/api/v2/status", "GET", None) => status(),
            ("/api/v2/status", _, _) => Reply::method_not_allowed("GET"),
            ("/api/v2/silences", "GET", None) => self.list(request, now),
            ("/api/v2/silences", "POST", None) => {
                self.authorized(request, || self.create(request.body, now))
            }
            ("/api/v2/silences", _, None) => Reply::method_not_allowed("GET, POST"),
            ("/api/v2/silence", "GET", Some(id)) => match self.store.get(id) {
                Some(silence) => json(200, &gettable(&silence, now)),
                None => not_found(id),
            },
            ("/api/v2/silence", "DELETE", Some(id)) => {
                self.authorized(request, || match self.store.expire(id, now) {
                    Ok(()) => {
                        log::info!("silence {id} expired through the admin API");
                        Reply::new(200, JSON, String::new())
                    }
                    Err(e) => store_error(e),
                })
            }
            ("/api/v2/silence", _, Some(_)) => Reply::method_not_allowed("GET, DELETE"),
            _ => error(404, "nothing is served at this path"),
        }
    }

    /// Runs `write` when the request carries the configured token.
    fn authorized(&self, request: &AdminRequest<'_>, write: impl FnOnce() -> Reply) -> Reply {
        let Some(token) = &self.token else {
            return error(
                403,
                "silence changes are off: no admin token is configured \
                 (admin.token, admin.token_file or admin.token_env)",
            );
        };
        let presented = request
            .authorization
            .and_then(|value| value.trim().strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(presented) if same_secret(presented, token.expose()) => write(),
            _ => error(
                401,
                "a bearer token is required: Authorization: Bearer <admin token>",
            ),
        }
    }

    fn list(&self, request: &AdminRequest<'_>, now: Timestamp) -> Reply {
        let mut filters = Vec::new();
        for raw in request.query_values("filter") {
            let text = percent_decode(raw);
            match parse_filter(&text) {
                Ok(matcher) => filters.push(matcher),
                Err(e) => return error(400, &format!("filter {}: {e}", quote(&text))),
            }
        }
        let silences = self.store.list();
        let shown: Vec<GettableSilence<'_>> = silences
            .iter()
            .filter(|s| {
                filters.iter().all(|f| {
                    let value = s
                        .matchers
                        .iter()
                        .find(|m| m.name == f.name && m.is_equal && !m.is_regex)
                        .map(|m| m.value.as_str());
                    f.matches(value)
                })
            })
            .map(|s| gettable(s, now))
            .collect();
        json(200, &shown)
    }

    fn create(&self, body: &[u8], now: Timestamp) -> Reply {
        let posted: PostableSilence = match serde_json::from_slice(body) {
            Ok(posted) => posted,
            Err(e) => return error(400, &format!("the body is not a silence: {e}")),
        };
        let matchers: Vec<String> = posted.matchers.iter().map(describe).collect();
        let updating = posted.id.clone().filter(|id| !id.is_empty());
        match self.store.upsert(posted, now) {
            Ok(id) => {
                let verb = match updating {
                    Some(old) if old == id => "updated",
                    _ => "created",
                };
                log::info!(
                    "silence {id} {verb} through the admin API: {}",
                    matchers.join(",")
                );
                json(200, &serde_json::json!({ "silenceID": id }))
            }
            Err(e) => store_error(e),
        }
    }
}

impl AdminRoutes for SilenceApi {
    fn respond(&self, request: &AdminRequest<'_>, rest: &str) -> Reply {
        self.respond_at(request, rest, Timestamp::now())
    }
}

fn gettable(silence: &StoredSilence, now: Timestamp) -> GettableSilence<'_> {
    GettableSilence {
        id: &silence.id,
        status: State {
            state: silence.state(now),
        },
        updated_at: silence.updated_at,
        matchers: &silence.matchers,
        starts_at: silence.starts_at,
        ends_at: silence.ends_at,
        created_by: &silence.created_by,
        comment: &silence.comment,
    }
}

fn describe(m: &ApiMatcher) -> String {
    let op = match (m.is_equal, m.is_regex) {
        (true, false) => "=",
        (false, false) => "!=",
        (true, true) => "=~",
        (false, true) => "!~",
    };
    format!("{}{op}{}", m.name, quote(&m.value))
}

/// What amtool reads before some commands: a version and an empty cluster.
fn status() -> Reply {
    let body = serde_json::json!({
        "cluster": { "name": "nightcrier", "status": "disabled", "peers": [] },
        "config": { "original": "" },
        "uptime": Timestamp::now(),
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "branch": "", "buildDate": "", "buildUser": "", "goVersion": "", "revision": ""
        }
    });
    json(200, &body)
}

fn store_error(e: StoreError) -> Reply {
    match e {
        StoreError::Invalid(message) => error(400, &message),
        StoreError::NotFound(id) => not_found(&id),
        StoreError::Io(message) => {
            log::error!("silences not saved: {message}");
            error(500, "the silences could not be saved; see the daemon's log")
        }
    }
}

fn not_found(id: &str) -> Reply {
    error(404, &format!("no silence {}", quote(id)))
}

/// Alertmanager answers errors with a JSON string.
fn error(status: u16, message: &str) -> Reply {
    json(status, &message)
}

fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Reply {
    match serde_json::to_string(value) {
        Ok(mut body) => {
            body.push('\n');
            Reply::new(status, JSON, body)
        }
        Err(e) => Reply::new(500, JSON, format!("{:?}\n", e.to_string())),
    }
}

/// Compares without stopping at the first difference.
fn same_secret(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, byte) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
    }
    diff == 0
}

/// A matcher as amtool sends it in `filter`: `name="value"`, `name!=value`, `name=~"re"`,
/// `name!~"re"`.
fn parse_filter(text: &str) -> Result<Matcher, String> {
    let at = text
        .find(['=', '!'])
        .ok_or("expected name=value, name!=value, name=~regex or name!~regex")?;
    let name = text[..at].trim();
    let rest = &text[at..];
    let (equal, regex, value) = if let Some(v) = rest.strip_prefix("=~") {
        (true, true, v)
    } else if let Some(v) = rest.strip_prefix("!~") {
        (false, true, v)
    } else if let Some(v) = rest.strip_prefix("!=") {
        (false, false, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (true, false, v)
    } else {
        return Err("expected =, !=, =~ or !~ after the name".into());
    };
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if regex {
        Matcher::regex(name, value, equal)
    } else {
        Matcher::exact(name, value, equal)
    }
}

/// `%XX` and `+` in a query value; invalid escapes stay as they are.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(token: Option<&str>) -> (tempfile::TempDir, SilenceApi) {
        let root = tempfile::tempdir().unwrap();
        let store = SilenceStore::open(root.path(), Box::new(|_| {})).unwrap();
        (
            root,
            SilenceApi::new(Arc::new(store), token.map(Secret::new)),
        )
    }

    fn call(api: &SilenceApi, method: &str, target: &str, auth: Option<&str>, body: &str) -> Reply {
        let mut request = AdminRequest::new(method, target);
        request.authorization = auth;
        request.body = body.as_bytes();
        let router = crate::admin::router::Router::new("/incidents")
            .mount("/api/v2/silences", api.clone())
            .mount("/api/v2/silence", api.clone())
            .mount("/api/v2/status", api.clone());
        router.respond(&request)
    }

    const SILENCE: &str = r#"{"matchers":[{"name":"namespace","value":"shop","isRegex":false,"isEqual":true},
        {"name":"fault_type","value":"OOM.*","isRegex":true}],
        "startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z",
        "createdBy":"ops","comment":"upgrade"}"#;

    #[test]
    fn create_list_get_and_expire() {
        let (_root, api) = serve(Some("s3cret"));
        let created = call(
            &api,
            "POST",
            "/api/v2/silences",
            Some("Bearer s3cret"),
            SILENCE,
        );
        assert_eq!(created.status, 200, "{}", created.body);
        let id: serde_json::Value = serde_json::from_str(&created.body).unwrap();
        let id = id["silenceID"].as_str().unwrap().to_string();
        let list = call(&api, "GET", "/api/v2/silences", None, "");
        let listed: serde_json::Value = serde_json::from_str(&list.body).unwrap();
        assert_eq!(listed[0]["id"], id.as_str());
        assert_eq!(listed[0]["status"]["state"], "active");
        assert_eq!(listed[0]["matchers"][1]["isEqual"], true);
        let filtered = call(
            &api,
            "GET",
            "/api/v2/silences?filter=namespace%3D%22other%22",
            None,
            "",
        );
        assert_eq!(filtered.body, "[]\n");
        let one = call(&api, "GET", &format!("/api/v2/silence/{id}"), None, "");
        assert_eq!(one.status, 200);
        let expired = call(
            &api,
            "DELETE",
            &format!("/api/v2/silence/{id}"),
            Some("Bearer s3cret"),
            "",
        );
        assert_eq!(expired.status, 200, "{}", expired.body);
        let one = call(&api, "GET", &format!("/api/v2/silence/{id}"), None, "");
        assert!(one.body.contains("\"state\":\"expired\""), "{}", one.body);
        assert_eq!(
            call(&api, "GET", "/api/v2/silence/nope", None, "").status,
            404
        );
    }

    #[test]
    fn writes_need_the_token_and_are_off_without_one() {
        let (_root, api) = serve(Some("s3cret"));
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("s3cret"),
            Some("Bearer s3cre"),
        ] {
            let reply = call(&api, "POST", "/api/v2/silences", auth, SILENCE);
            assert_eq!(reply.status, 401, "{auth:?}");
        }
        assert_eq!(
            call(&api, "DELETE", "/api/v2/silence/x", None, "").status,
            401
        );
        assert_eq!(call(&api, "GET", "/api/v2/silences", None, "").body, "[]\n");
        let (_root, off) = serve(None);
        let reply = call(&off, "POST", "/api/v2/silences", Some("Bearer x"), SILENCE);
        assert_eq!(reply.status, 403);
        assert!(reply.body.contains("no admin token"), "{}", reply.body);
    }

    #[test]
    fn bad_silences_get_a_400_naming_the_problem() {
        let (_root, api) = serve(Some("t"));
        let reply = call(&api, "POST", "/api/v2/silences", Some("Bearer t"), "{");
        assert_eq!(reply.status, 400);
        let bad = SILENCE.replace("OOM.*", "OOM(");
        let reply = call(&api, "POST", "/api/v2/silences", Some("Bearer t"), &bad);
        assert_eq!(reply.status, 400);
        assert!(reply.body.contains("matchers[1]"), "{}", reply.body);
    }

    #[test]
    fn filters_and_query_values_are_decoded() {
        assert_eq!(percent_decode("a%3D%22b+c%22%zz%"), "a=\"b c\"%zz%");
        let m = parse_filter("fault_type=~\"OOM.*\"").unwrap();
        assert!(m.matches(Some("OOMKilled")));
        assert!(parse_filter("nothing").is_err());
    }
}
