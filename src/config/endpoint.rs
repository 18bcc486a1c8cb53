//! MCP endpoint URLs, split once into the pieces the connection code needs.
//!
//! Only `http` and `https` are accepted. Credentials never go in the URL (`api_key`
//! is sent as a bearer token instead), and error messages never repeat the path or
//! query, because a Slack webhook URL is itself a secret.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use super::error::quote;

/// Longest host name DNS allows.
const MAX_HOST_LEN: usize = 253;

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as written.
    pub url: String,
    /// True for `https`.
    pub tls: bool,
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    /// The explicit port, else 80 or 443.
    pub port: u16,
    /// Path and query, `/` when the URL has none.
    pub path: String,
    /// The authority exactly as the URL has it, for the `Host` header.
    pub host_header: String,
}

/// Why a URL is not a usable endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointError {
    Empty,
    InvalidCharacter,
    MissingScheme,
    UnsupportedScheme(String),
    MissingHost,
    UserInfo,
    BadHost(String),
    BadIpv6(String),
    BadPort(String),
    Fragment,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Empty => f.write_str("URL is empty"),
            EndpointError::InvalidCharacter => f.write_str(
                "URL contains whitespace, a control character or a non-ASCII character \
                 (percent-encode it)",
            ),
            EndpointError::MissingScheme => {
                f.write_str("URL has no scheme (write http://host:port/path or https://...)")
            }
            EndpointError::UnsupportedScheme(scheme) => {
                write!(f, "scheme {} is not http or https", quote(scheme))
            }
            EndpointError::MissingHost => f.write_str("URL has no host"),
            EndpointError::UserInfo => f.write_str(
                "credentials in the URL are not allowed (put the key in api_key, api_key_file \
                 or api_key_env)",
            ),
            EndpointError::BadHost(host) => {
                write!(f, "host {} is not a valid host name", quote(host))
            }
            EndpointError::BadIpv6(host) => {
                write!(f, "{} is not a valid IPv6 address", quote(host))
            }
            EndpointError::BadPort(port) => {
                write!(f, "port {} is not a number from 1 to 65535", quote(port))
            }
            EndpointError::Fragment => f.write_str("URL has a #fragment, which is never sent"),
        }
    }
}

impl std::error::Error for EndpointError {}

impl Endpoint {
    /// Parses and checks an endpoint URL.
    pub fn parse(url: &str) -> Result<Endpoint, EndpointError> {
        if url.is_empty() {
            return Err(EndpointError::Empty);
        }
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EndpointError::InvalidCharacter);
        }
        let (scheme, rest) = url.split_once("://").ok_or(EndpointError::MissingScheme)?;
        let tls = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else if scheme.is_empty() {
            return Err(EndpointError::MissingScheme);
        } else {
            return Err(EndpointError::UnsupportedScheme(scheme.to_string()));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(EndpointError::UserInfo);
        }
        if path_and_query.contains('#') {
            return Err(EndpointError::Fragment);
        }
        let (host, port) = split_authority(authority)?;
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(text) => parse_port(text)?,
        };
        let path = if path_and_query.is_empty() {
            "/".to_string()
        } else if path_and_query.starts_with('?') {
            format!("/{path_and_query}")
        } else {
            path_and_query.to_string()
        };
        Ok(Endpoint {
            url: url.to_string(),
            tls,
            host,
            port,
            path,
            host_header: authority.to_string(),
        })
    }

    /// The URL with any query replaced by `?…`, for logs and summaries: queries
    /// sometimes carry tokens.
    pub fn redacted(&self) -> String {
        match self.url.split_once('?') {
            Some((before, _)) => format!("{before}?…"),
            None => self.url.clone(),
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

/// Shows the redacted URL.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Splits `host[:port]` or `[v6][:port]`; the host comes back without brackets.
fn split_authority(authority: &str) -> Result<(String, Option<&str>), EndpointError> {
    if authority.is_empty() {
        return Err(EndpointError::MissingHost);
    }
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or_else(|| EndpointError::BadIpv6(authority.to_string()))?;
        if address.parse::<Ipv6Addr>().is_err() {
            return Err(EndpointError::BadIpv6(address.to_string()));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| EndpointError::BadHost(authority.to_string()))?,
            ),
        };
        return Ok((address.to_string(), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(EndpointError::MissingHost);
    }
    if port.is_some_and(|p| p.contains(':')) {
        // An IPv6 address without brackets.
        return Err(EndpointError::BadHost(format!(
            "{authority} (write IPv6 addresses in brackets, e.g. [::1]:8080)"
        )));
    }
    let valid_host = host.len() <= MAX_HOST_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !host.starts_with(['.', '-'])
        && !host.contains("..");
    if !valid_host {
        return Err(EndpointError::BadHost(host.to_string()));
    }
    Ok((host.to_string(), port))
}

fn parse_port(text: &str) -> Result<u16, EndpointError> {
    let bad = || EndpointError::BadPort(text.to_string());
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoint_splits_into_parts() {
        let e = Endpoint::parse("http://127.0.0.1:8080/mcp").unwrap();
        assert!(!e.tls);
        assert_eq!(e.host, "127.0.0.1");
        assert_eq!(e.port, 8080);
        assert_eq!(e.path, "/mcp");
        assert_eq!(e.host_header, "127.0.0.1:8080");
        assert_eq!(e.url, "http://127.0.0.1:8080/mcp");
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        assert_eq!(Endpoint::parse("http://mcp.example").unwrap().port, 80);
        let e = Endpoint::parse("HTTPS://mcp.example").unwrap();
        assert!(e.tls);
        assert_eq!(e.port, 443);
        assert_eq!(e.host_header, "mcp.example");
    }

    #[test]
    fn empty_path_becomes_slash_and_query_is_kept() {
        assert_eq!(Endpoint::parse("http://h:1").unwrap().path, "/");
        assert_eq!(
            Endpoint::parse("http://h/mcp?x=1").unwrap().path,
            "/mcp?x=1"
        );
        assert_eq!(Endpoint::parse("http://h?x=1").unwrap().path, "/?x=1");
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets_but_host_header_keeps_them() {
        let e = Endpoint::parse("https://[::1]:8443/mcp").unwrap();
        assert_eq!(e.host, "::1");
        assert_eq!(e.port, 8443);
        assert_eq!(e.host_header, "[::1]:8443");
        let e = Endpoint::parse("http://[2001:db8::7]/mcp").unwrap();
        assert_eq!(e.host, "2001:db8::7");
        assert_eq!(e.port, 80);
        assert_eq!(e.host_header, "[2001:db8::7]");
    }

    #[test]
    fn bad_ipv6_is_refused() {
        assert!(matches!(
            Endpoint::parse("http://[::zz]:80/"),
            Err(EndpointError::BadIpv6(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://[::1/"),
            Err(EndpointError::BadIpv6(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://[::1]x/"),
            Err(EndpointError::BadHost(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://::1:80/"),
            Err(EndpointError::MissingHost)
        ));
        assert!(matches!(
            Endpoint::parse("http://fe80::1:80/"),
            Err(EndpointError::BadHost(_))
        ));
    }

    #[test]
    fn non_http_schemes_are_refused() {
        assert_eq!(
            Endpoint::parse("ftp://h/"),
            Err(EndpointError::UnsupportedScheme("ftp".into()))
        );
        assert_eq!(
            Endpoint::parse("ws://h/"),
            Err(EndpointError::UnsupportedScheme("ws".into()))
        );
        assert_eq!(
            Endpoint::parse("h:8080/mcp"),
            Err(EndpointError::MissingScheme)
        );
        assert_eq!(Endpoint::parse("://h/"), Err(EndpointError::MissingScheme));
    }

    #[test]
    fn missing_host_is_refused() {
        assert_eq!(Endpoint::parse("http://"), Err(EndpointError::MissingHost));
        assert_eq!(
            Endpoint::parse("http:///mcp"),
            Err(EndpointError::MissingHost)
        );
        assert_eq!(
            Endpoint::parse("http://:80/"),
            Err(EndpointError::MissingHost)
        );
        assert_eq!(Endpoint::parse(""), Err(EndpointError::Empty));
    }

    #[test]
    fn bad_ports_are_refused() {
        for url in [
            "http://h:/",
            "http://h:0/",
            "http://h:65536/",
            "http://h:99999999999/",
            "http://h:8o/",
            "http://h:-1/",
        ] {
            assert!(
                matches!(Endpoint::parse(url), Err(EndpointError::BadPort(_))),
                "{url}"
            );
        }
        assert_eq!(Endpoint::parse("http://h:65535/").unwrap().port, 65535);
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echoing_them() {
        let err = Endpoint::parse("https://user:s3cret@h/mcp").unwrap_err();
        assert_eq!(err, EndpointError::UserInfo);
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn fragments_whitespace_and_bad_hosts_are_refused() {
        assert_eq!(
            Endpoint::parse("http://h/mcp#x"),
            Err(EndpointError::Fragment)
        );
        assert_eq!(
            Endpoint::parse("http://h/m cp"),
            Err(EndpointError::InvalidCharacter)
        );
        assert_eq!(
            Endpoint::parse("http://h/mcp\n"),
            Err(EndpointError::InvalidCharacter)
        );
        assert_eq!(
            Endpoint::parse("http://hé/"),
            Err(EndpointError::InvalidCharacter)
        );
        assert!(matches!(
            Endpoint::parse("http://a..b/"),
            Err(EndpointError::BadHost(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://a$b/"),
            Err(EndpointError::BadHost(_))
        ));
    }

    #[test]
    fn redacted_form_hides_the_query() {
        let e = Endpoint::parse("https://h/mcp?token=abc").unwrap();
        assert_eq!(e.redacted(), "https://h/mcp?…");
        assert_eq!(e.to_string(), "https://h/mcp?…");
        let e = Endpoint::parse("https://h/mcp").unwrap();
        assert_eq!(e.to_string(), "https://h/mcp");
    }

    #[test]
    fn errors_do_not_repeat_the_path() {
        let err = Endpoint::parse("ftp://hooks.example/services/T0/B0/secretpath").unwrap_err();
        assert!(!err.to_string().contains("secretpath"));
    }
}
