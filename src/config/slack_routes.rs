//! `[[slack.routes]]`: which channel (app mode) or webhook (webhook mode) an incident goes
//! to, by cluster, environment, labels and fault type. Matching is the notifier's; this
//! reads the entries and checks that each names one destination of the mode in use.

use std::collections::BTreeMap;

use super::document::{Context, Sourced, Table};
use super::secret::Secret;
use super::values::SecretKeys;
use super::Endpoint;

pub(crate) const ROUTE_KEYS: &[&str] = &[
    "cluster",
    "environment",
    "labels",
    "fault_type",
    "channel",
    "webhook_url",
    "webhook_url_file",
    "webhook_url_env",
];

const ROUTE_WEBHOOK: SecretKeys = SecretKeys {
    inline: "webhook_url",
    file: "webhook_url_file",
    env: "webhook_url_env",
};

/// One `[[slack.routes]]` entry. Conditions left out always hold; `*` in one matches any
/// run of characters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SlackRoute {
    pub cluster: Option<String>,
    pub environment: Option<String>,
    /// Every label named must be present with a matching value.
    pub labels: BTreeMap<String, String>,
    pub fault_type: Option<String>,
    /// App mode: the channel.
    pub channel: Option<String>,
    /// Webhook mode: the webhook.
    pub webhook_url: Option<Secret>,
}

/// Which mode the routes must serve.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteMode {
    App,
    Webhook,
    Off,
}

pub(crate) fn read_routes(ctx: &mut Context, slack: &Table, mode: RouteMode) -> Vec<SlackRoute> {
    let Some(entries) = ctx.tables(slack, "routes") else {
        return Vec::new();
    };
    let mut routes = Vec::with_capacity(entries.len());
    for table in entries {
        ctx.allow_keys(&table, ROUTE_KEYS, &[]);
        let webhook = ctx.secret(&table, ROUTE_WEBHOOK).and_then(|(key, url)| {
            let Sourced { value, origin } = url;
            match Endpoint::parse(value.expose()) {
                Ok(_) => Some((origin, value)),
                Err(e) => {
                    let message = format!("webhook URL is not usable: {e}");
                    ctx.error(&table.scope, key, &origin, message);
                    None
                }
            }
        });
        let channel = ctx.text(&table, "channel");
        let problem = match (mode, &channel, &webhook) {
            (RouteMode::Off, _, _) => {
                Some("routes need Slack: set slack.bot_token (app mode) or slack.webhook_url")
            }
            (_, Some(_), Some(_)) => Some("a route names a channel or a webhook, not both"),
            (RouteMode::App, None, Some(_)) => {
                Some("app mode (slack.bot_token) routes to a channel: set channel, not a webhook")
            }
            (RouteMode::Webhook, Some(_), None) => Some(
                "webhook mode (slack.webhook_url) routes to a webhook: set webhook_url, not a \
                 channel",
            ),
            (RouteMode::App, None, None) => Some("the route names no channel"),
            (RouteMode::Webhook, None, None) => Some("the route names no webhook_url"),
            _ => None,
        };
        if let Some(problem) = problem {
            let origin = channel
                .as_ref()
                .map(|c| c.origin.clone())
                .or_else(|| webhook.as_ref().map(|w| w.0.clone()));
            match origin {
                Some(origin) => ctx.error(&table.scope, "", &origin, problem),
                None => ctx.missing(&table, "channel", problem),
            }
        }
        let labels = ctx.string_map(&table, "labels");
        routes.push(SlackRoute {
            cluster: ctx.text(&table, "cluster").map(|c| c.value),
            environment: ctx.text(&table, "environment").map(|c| c.value),
            labels,
            fault_type: ctx.text(&table, "fault_type").map(|c| c.value),
            channel: channel.map(|c| c.value),
            webhook_url: webhook.map(|(_, url)| url),
        });
    }
    routes
}
