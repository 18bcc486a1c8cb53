//! `[[silences]]`: silences and maintenance windows written in the file. Each has matchers
//! (`[silences.matchers]`: a label name and a text or glob, or `{ regex = … }`,
//! `{ not = … }`, `{ not_regex = … }`), and either `starts_at`/`ends_at` (RFC 3339) or a
//! `weekly` window in a time zone of the system's tz database.

use std::collections::BTreeSet;

use super::document::{Context, Origin, Table};
use super::error::quote;
use super::suggest::did_you_mean;
use super::ClusterConfig;
use crate::silence::matcher::{Matcher, FAULT_LABELS};
use crate::silence::window::{
    parse_clock, parse_day, parse_instant, time_zone, ActiveTime, WeeklyWindow,
};
use crate::silence::Silence;

pub(crate) const SILENCE_KEYS: &[&str] = &[
    "name",
    "comment",
    "created_by",
    "starts_at",
    "ends_at",
    "weekly",
    "matchers",
];
const WEEKLY_KEYS: &[&str] = &["days", "start", "end", "time_zone"];
const MATCHER_FORMS: &[&str] = &["regex", "not", "not_regex"];

/// Reads every `[[silences]]` entry; a broken one is reported and left out.
pub(crate) fn read_silences(
    ctx: &mut Context,
    root: &Table,
    clusters: &[ClusterConfig],
) -> Vec<Silence> {
    let Some(tables) = ctx.tables(root, "silences") else {
        return Vec::new();
    };
    let labels: BTreeSet<&str> = clusters
        .iter()
        .flat_map(|c| c.labels.keys().map(String::as_str))
        .collect();
    let mut names = BTreeSet::new();
    let mut silences = Vec::new();
    for (index, mut table) in tables.into_iter().enumerate() {
        // A silence belongs to no cluster; its errors name it by its place.
        table.scope.cluster = None;
        let table = &table;
        ctx.allow_keys(table, SILENCE_KEYS, &[]);
        let name = match ctx.string(table, "name") {
            Some(name) if valid_name(&name.value) => {
                if !names.insert(name.value.clone()) {
                    let message = format!("{} names another silence too", quote(&name.value));
                    ctx.error(&table.scope, "name", &name.origin, message);
                }
                name.value
            }
            Some(name) => {
                let message = format!(
                    "{} is not a usable name (letters, digits, `-`, `_`, `.`; up to 64)",
                    quote(&name.value)
                );
                ctx.error(&table.scope, "name", &name.origin, message);
                continue;
            }
            None => index.to_string(),
        };
        let matchers = read_matchers(ctx, table, &labels);
        let active = read_active_time(ctx, table);
        let (Some(matchers), Some(active)) = (matchers, active) else {
            continue;
        };
        silences.push(Silence {
            id: format!("file:{name}"),
            matchers,
            active,
            comment: ctx
                .string(table, "comment")
                .map_or(String::new(), |c| c.value),
            created_by: ctx
                .string(table, "created_by")
                .map_or(String::new(), |c| c.value),
        });
    }
    silences
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn read_matchers(
    ctx: &mut Context,
    silence: &Table,
    labels: &BTreeSet<&str>,
) -> Option<Vec<Matcher>> {
    let table = ctx.table(silence, "matchers");
    let keys = table.keys();
    if keys.is_empty() {
        let origin = silence.span.clone().map_or(Origin::Default, Origin::File);
        ctx.error(
            &silence.scope,
            "matchers",
            &origin,
            "a silence needs at least one matcher ([silences.matchers]), or it would \
             silence everything",
        );
        return None;
    }
    let mut matchers = Vec::new();
    let mut broken = false;
    for key in keys {
        if !FAULT_LABELS.contains(&key.as_str()) && !labels.contains(key.as_str()) {
            let known: Vec<&str> = FAULT_LABELS
                .iter()
                .copied()
                .chain(labels.iter().copied())
                .collect();
            let hint = did_you_mean(&key, &known)
                .map(|close| format!(" (did you mean `{close}`?)"))
                .unwrap_or_default();
            let origin = ctx.origin_of(&table, &key).unwrap_or(Origin::Default);
            let message = format!(
                "{} is neither a fault label ({}) nor a label of any cluster{hint}",
                quote(&key),
                FAULT_LABELS.join(", ")
            );
            ctx.error(&table.scope, &key, &origin, message);
            broken = true;
            continue;
        }
        let made = if table.is_table(&key) {
            let form = ctx.table(&table, &key);
            ctx.allow_keys(&form, MATCHER_FORMS, &[]);
            let given: Vec<(&str, _)> = MATCHER_FORMS
                .iter()
                .filter_map(|f| ctx.string(&form, f).map(|v| (*f, v)))
                .collect();
            match given.as_slice() {
                [(form_key, value)] => {
                    let made = match *form_key {
                        "regex" => Matcher::regex(&key, &value.value, true),
                        "not_regex" => Matcher::regex(&key, &value.value, false),
                        _ => Matcher::glob(&key, &value.value, false),
                    };
                    made.map_err(|e| {
                        (
                            form.scope.clone(),
                            form_key.to_string(),
                            value.origin.clone(),
                            e,
                        )
                    })
                }
                _ => {
                    let origin = ctx.origin_of(&table, &key).unwrap_or(Origin::Default);
                    Err((
                        table.scope.clone(),
                        key.clone(),
                        origin,
                        "expected a text or glob, or exactly one of { regex = … }, \
                         { not = … }, { not_regex = … }"
                            .into(),
                    ))
                }
            }
        } else {
            match ctx.string(&table, &key) {
                Some(value) => Matcher::glob(&key, &value.value, true)
                    .map_err(|e| (table.scope.clone(), key.clone(), value.origin.clone(), e)),
                None => {
                    broken = true;
                    continue;
                }
            }
        };
        match made {
            Ok(matcher) => matchers.push(matcher),
            Err((scope, field, origin, message)) => {
                ctx.error(&scope, &field, &origin, message);
                broken = true;
            }
        }
    }
    if !broken && matchers.iter().all(|m| m.matches(Some(""))) {
        let origin = silence.span.clone().map_or(Origin::Default, Origin::File);
        ctx.error(
            &silence.scope,
            "matchers",
            &origin,
            "every matcher accepts an empty value, so this would silence everything",
        );
        return None;
    }
    (!broken).then_some(matchers)
}

fn read_active_time(ctx: &mut Context, silence: &Table) -> Option<ActiveTime> {
    let starts = ctx.string(silence, "starts_at");
    let ends = ctx.string(silence, "ends_at");
    let weekly = silence.has("weekly");
    let origin = silence.span.clone().map_or(Origin::Default, Origin::File);
    match (starts, ends, weekly) {
        (Some(starts), Some(ends), false) => {
            let starts_at = parse_instant(&starts.value)
                .map_err(|e| ctx.error(&silence.scope, "starts_at", &starts.origin, e))
                .ok();
            let ends_at = parse_instant(&ends.value)
                .map_err(|e| ctx.error(&silence.scope, "ends_at", &ends.origin, e))
                .ok();
            let (starts_at, ends_at) = (starts_at?, ends_at?);
            if ends_at <= starts_at {
                let message = format!("ends_at ({ends_at}) is not after starts_at ({starts_at})");
                ctx.error(&silence.scope, "ends_at", &ends.origin, message);
                return None;
            }
            Some(ActiveTime::Between { starts_at, ends_at })
        }
        (None, None, true) => read_weekly(ctx, silence).map(ActiveTime::Weekly),
        (Some(_), Some(_), true) | (Some(_), None, true) | (None, Some(_), true) => {
            ctx.error(
                &silence.scope,
                "weekly",
                &origin,
                "set either starts_at and ends_at, or weekly, not both",
            );
            None
        }
        (Some(_), None, false) | (None, Some(_), false) => {
            ctx.error(
                &silence.scope,
                "ends_at",
                &origin,
                "set both starts_at and ends_at",
            );
            None
        }
        (None, None, false) => {
            ctx.error(
                &silence.scope,
                "starts_at",
                &origin,
                "a silence needs starts_at and ends_at, or a weekly window",
            );
            None
        }
    }
}

fn read_weekly(ctx: &mut Context, silence: &Table) -> Option<WeeklyWindow> {
    let table = ctx.table(silence, "weekly");
    ctx.allow_keys(&table, WEEKLY_KEYS, &[]);
    let table_origin = table.span.clone().map_or(Origin::Default, Origin::File);
    let mut ok = true;
    let mut days = Vec::new();
    let listed = ctx.string_list(&table, "days");
    if listed.is_empty() {
        ctx.error(
            &table.scope,
            "days",
            &table_origin,
            "name the days, e.g. days = [\"sat\", \"sun\"]",
        );
        ok = false;
    }
    for day in listed {
        match parse_day(&day.value) {
            Some(d) if !days.contains(&d) => days.push(d),
            Some(_) => {}
            None => {
                let message = format!("{} is not a day (mon … sun)", quote(&day.value));
                ctx.error(&table.scope, "days", &day.origin, message);
                ok = false;
            }
        }
    }
    let mut clock = |key: &str| match ctx.string(&table, key) {
        Some(text) => match parse_clock(&text.value) {
            Some(time) => Some(time),
            None => {
                let message = format!("{} is not a time of day HH:MM", quote(&text.value));
                ctx.error(&table.scope, key, &text.origin, message);
                None
            }
        },
        None => {
            ctx.error(&table.scope, key, &table_origin, "missing (HH:MM)");
            None
        }
    };
    let start = clock("start");
    let end = clock("end");
    let zone = match ctx.string(&table, "time_zone") {
        Some(name) => match time_zone(&name.value) {
            Ok(zone) => Some((name.value, zone)),
            Err(e) => {
                ctx.error(&table.scope, "time_zone", &name.origin, e);
                None
            }
        },
        None => {
            ctx.error(
                &table.scope,
                "time_zone",
                &table_origin,
                "missing (an IANA name such as Europe/Berlin, or UTC)",
            );
            None
        }
    };
    let (start, end, (zone_name, zone)) = (start?, end?, zone?);
    ok.then_some(WeeklyWindow {
        days,
        start,
        end,
        zone_name,
        zone,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{parse_str, FlagOverrides};

    const CLUSTER: &str = "[[clusters]]\nname = \"a\"\nlabels = { team = \"shop\" }\n\
                           [clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n";

    fn errors(silences: &str) -> String {
        match parse_str(
            &format!("{CLUSTER}{silences}"),
            Path::new("n.toml"),
            &[],
            &FlagOverrides::default(),
        ) {
            Ok(_) => panic!("accepted:\n{silences}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn valid_silences_are_read_with_their_ids_and_forms() {
        let text = format!(
            "{CLUSTER}[[silences]]\nname = \"w\"\ncreated_by = \"alice\"\n\
             weekly = {{ days = [\"Sat\", \"sunday\"], start = \"22:00\", end = \"02:00\", time_zone = \"UTC\" }}\n\
             [silences.matchers]\nteam = \"shop\"\nnamespace = {{ not_regex = \"kube-.*\" }}\n\
             [[silences]]\nstarts_at = \"2026-12-01T22:00:00+01:00\"\nends_at = \"2026-12-02T02:00:00Z\"\n\
             matchers = {{ resource_name = {{ not = \"db-*\" }}, cluster = \"a\" }}\n"
        );
        let config = parse_str(&text, Path::new("n.toml"), &[], &FlagOverrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = config.silences.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["file:w", "file:1"]);
        let shown: Vec<String> = config.silences[1]
            .matchers
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["resource_name!=\"db-*\"", "cluster=\"a\""]);
        assert_eq!(
            config.silences[0].active.describe(),
            "weekly sat,sun 22:00–02:00 UTC"
        );
    }

    #[test]
    fn bad_silences_are_refused_naming_the_place() {
        let e = errors(
            "[[silences]]\nstarts_at = \"2026-12-02T00:00:00Z\"\nends_at = \"2026-12-01T00:00:00Z\"\n\
             matchers = { cluster = \"a\" }\n",
        );
        assert!(
            e.contains(
                "silences[0].ends_at: ends_at (2026-12-01T00:00:00Z) is not after starts_at"
            ),
            "{e}"
        );
        let e = errors(
            "[[silences]]\nweekly = { days = [\"sun\"], start = \"01:00\", end = \"04:00\", time_zone = \"Mars/Olympus\" }\n\
             matchers = { namespace = { regex = \"(\" } }\n",
        );
        assert!(
            e.contains("silences[0].weekly.time_zone: \"Mars/Olympus\" is not a time zone"),
            "{e}"
        );
        assert!(
            e.contains(
                "silences[0].matchers.namespace.regex: \"(\" is not a valid regular expression"
            ),
            "{e}"
        );
        let e = errors("[[silences]]\nstarts_at = \"2026-12-01\"\nends_at = \"2026-12-02T00:00:00Z\"\nmatchers = { tema = \"shop\" }\n");
        assert!(
            e.contains("silences[0].starts_at: \"2026-12-01\" is not an RFC 3339 time"),
            "{e}"
        );
        assert!(e.contains("\"tema\" is neither a fault label"), "{e}");
        assert!(e.contains("did you mean `team`?"), "{e}");
        let e = errors("[[silences]]\nstarts_at = \"2026-12-01T00:00:00Z\"\nends_at = \"2026-12-02T00:00:00Z\"\nmatchers = { namespace = \"*\" }\n");
        assert!(e.contains("would silence everything"), "{e}");
        let e = errors(
            "[[silences]]\nstarts_at = \"2026-12-01T00:00:00Z\"\nmatchers = { cluster = \"a\" }\n",
        );
        assert!(e.contains("set both starts_at and ends_at"), "{e}");
    }
}
