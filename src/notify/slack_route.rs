//! Which Slack destination an incident goes to: `[[slack.routes]]` matched in order on the
//! cluster's name, environment and labels and the fault's type; the first route whose
//! conditions all hold wins, and none falls back to the default (`slack.channel` or
//! `slack.webhook_url`). A condition may use `*` for any run of characters.

use std::collections::BTreeMap;

use crate::config::SlackRoute;

/// Where one incident goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination<'a> {
    /// A route, by its position in the file (0-based).
    Route(usize, &'a SlackRoute),
    Default,
}

impl SlackRoute {
    /// True when every condition set holds.
    pub fn matches(
        &self,
        cluster: &str,
        environment: Option<&str>,
        labels: &BTreeMap<String, String>,
        fault_type: Option<&str>,
    ) -> bool {
        let holds = |pattern: &Option<String>, value: Option<&str>| match pattern {
            None => true,
            Some(pattern) => value.is_some_and(|v| wildcard_match(pattern, v)),
        };
        holds(&self.cluster, Some(cluster))
            && holds(&self.environment, environment)
            && holds(&self.fault_type, fault_type)
            && self.labels.iter().all(|(key, pattern)| {
                labels
                    .get(key)
                    .is_some_and(|value| wildcard_match(pattern, value))
            })
    }

    /// "channel C0PAY" or "webhook (redacted)", for `nightcrier check` and logs.
    pub fn target_text(&self) -> String {
        match (&self.channel, &self.webhook_url) {
            (Some(channel), _) => format!("channel {channel}"),
            (None, Some(_)) => "webhook (redacted)".to_string(),
            (None, None) => "-".to_string(),
        }
    }
}

/// The first route that matches, else the default. `fault_type` is `None` when asking for
/// a cluster as a whole (routes with a fault type condition are then skipped).
pub fn route<'a>(
    routes: &'a [SlackRoute],
    cluster: &str,
    environment: Option<&str>,
    labels: &BTreeMap<String, String>,
    fault_type: Option<&str>,
) -> Destination<'a> {
    routes
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches(cluster, environment, labels, fault_type))
        .map_or(Destination::Default, |(i, r)| Destination::Route(i, r))
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some((first, rest)) if !rest.is_empty() => (*first, rest),
        _ => return pattern == text,
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let last = rest.len() - 1;
    for (i, part) in rest.iter().enumerate() {
        if i == last {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn to(channel: &str) -> SlackRoute {
        SlackRoute {
            channel: Some(channel.into()),
            ..SlackRoute::default()
        }
    }

    #[test]
    fn wildcards_match_prefixes_suffixes_and_middles() {
        assert!(wildcard_match("prod-*", "prod-eu-1"));
        assert!(wildcard_match("*-eu-*", "prod-eu-1"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "abc"));
        assert!(!wildcard_match("a*b*c", "acb"));
        assert!(!wildcard_match("prod-*", "staging-1"));
        assert!(!wildcard_match("prod", "prod-1"));
        assert!(!wildcard_match("*ab*ab", "ab"));
    }

    #[test]
    fn first_matching_route_wins_and_none_falls_back_to_the_default() {
        let routes = vec![
            SlackRoute {
                fault_type: Some("OOM*".into()),
                ..to("C0MEM")
            },
            SlackRoute {
                labels: labels(&[("team", "payments")]),
                ..to("C0PAY")
            },
            SlackRoute {
                cluster: Some("prod-*".into()),
                environment: Some("production".into()),
                ..to("C0PROD")
            },
        ];
        let pay = labels(&[("team", "payments"), ("tier", "1")]);
        let none = labels(&[]);
        let pick = |cluster, env, labels, fault| match route(&routes, cluster, env, labels, fault) {
            Destination::Route(i, _) => Some(i),
            Destination::Default => None,
        };
        assert_eq!(
            pick("prod-1", Some("production"), &pay, Some("OOMKilled")),
            Some(0)
        );
        assert_eq!(
            pick("prod-1", Some("production"), &pay, Some("CrashLoop")),
            Some(1)
        );
        assert_eq!(
            pick("prod-1", Some("production"), &none, Some("CrashLoop")),
            Some(2)
        );
        assert_eq!(pick("prod-1", None, &none, Some("CrashLoop")), None);
        assert_eq!(pick("dev-1", Some("production"), &none, None), None);
        // A cluster as a whole: routes on a fault type do not apply.
        assert_eq!(pick("prod-1", Some("production"), &pay, None), Some(1));
    }

    #[test]
    fn targets_never_show_a_webhook() {
        let route = SlackRoute {
            webhook_url: Some(Secret::new("https://hooks.slack.com/services/T/B/SECRET")),
            ..SlackRoute::default()
        };
        assert_eq!(route.target_text(), "webhook (redacted)");
        assert_eq!(to("C1").target_text(), "channel C1");
    }
}
