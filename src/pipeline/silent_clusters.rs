//! Silent clusters: a watcher that stops watching must raise an alarm itself. A cluster
//! that has not been `active`, or whose subscription was lost and not renewed, for
//! `alerts.cluster_down_after` gets one Slack message (and `nightcrier_cluster_silent` 1);
//! when it is active again, one "recovered" message. A flapping cluster gets at most one
//! such pair per `alerts.flap_window`: a new silence within it is reported only if it still
//! lasts when the window ends.

use std::time::{Duration, Instant};

use super::TriagePipeline;
use crate::cluster::status::{ConnectionStatus, HealthSnapshot};
use crate::name_map::NameMap;
use crate::stage::StageContext;

/// A message to send.
#[derive(Debug, PartialEq)]
pub enum SilenceAlert {
    Silent { cluster: String, for_: Duration },
    Recovered { cluster: String, after: Duration },
}

#[derive(Debug, Default)]
struct ClusterWatch {
    /// Since when it has not been watching.
    down_since: Option<Instant>,
    /// The silent message was sent for the current silence.
    alerted: bool,
    /// When the last silent message was sent.
    last_alert: Option<Instant>,
}

/// The watch over every cluster. No I/O: states and time in, messages out.
#[derive(Debug)]
pub struct SilentClusterWatch {
    down_after: Duration,
    flap_window: Duration,
    clusters: NameMap<String, ClusterWatch>,
}

impl SilentClusterWatch {
    pub fn new(down_after: Duration, flap_window: Duration) -> SilentClusterWatch {
        SilentClusterWatch {
            down_after,
            flap_window,
            clusters: NameMap::default(),
        }
    }

    pub fn set_timing(&mut self, down_after: Duration, flap_window: Duration) {
        self.down_after = down_after;
        self.flap_window = flap_window;
    }

    /// One cluster's state now: `watching` when it is active with its subscription in place.
    pub fn observe(&mut self, cluster: &str, watching: bool, now: Instant) -> Option<SilenceAlert> {
        // Asked for every cluster at every snapshot: a known cluster costs no allocation.
        if !self.clusters.contains_key(cluster) {
            self.clusters
                .insert(cluster.to_owned(), ClusterWatch::default());
        }
        let watch = self.clusters.get_mut(cluster)?;
        if watching {
            let since = watch.down_since.take();
            if std::mem::take(&mut watch.alerted) {
                return Some(SilenceAlert::Recovered {
                    cluster: cluster.to_owned(),
                    after: since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s)),
                });
            }
            return None;
        }
        let since = *watch.down_since.get_or_insert(now);
        let silent_for = now.saturating_duration_since(since);
        let damped = watch
            .last_alert
            .is_some_and(|at| now < at + self.flap_window);
        if watch.alerted || silent_for < self.down_after || damped {
            return None;
        }
        watch.alerted = true;
        watch.last_alert = Some(now);
        Some(SilenceAlert::Silent {
            cluster: cluster.to_owned(),
            for_: silent_for,
        })
    }

    /// Clusters reported silent and not recovered yet.
    pub fn silent(&self) -> impl Iterator<Item = &str> {
        self.clusters
            .iter()
            .filter(|(_, w)| w.alerted)
            .map(|(name, _)| name.as_str())
    }

    /// Clusters watched.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Forgets clusters no longer configured.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.clusters.retain(|name, _| keep(name));
    }
}

/// Watching: active, and its subscription in place (no gap open).
fn watching(snapshot: &HealthSnapshot) -> bool {
    snapshot.status == ConnectionStatus::Active
        && snapshot
            .subscription_gaps
            .iter()
            .all(|gap| gap.end.is_some())
}

fn seconds(d: Duration) -> String {
    crate::notify::slack::format_duration(d)
}

impl TriagePipeline {
    /// The clusters' states, as the loop publishes them.
    pub(super) fn watch_clusters(&mut self, ctx: &mut StageContext, clusters: &[HealthSnapshot]) {
        let mut alerts = Vec::new();
        for snapshot in clusters {
            if let Some(alert) =
                self.silent_clusters
                    .observe(&snapshot.name, watching(snapshot), ctx.now)
            {
                alerts.push((alert, snapshot.last_error.clone()));
            }
        }
        // Every cluster of the snapshot was just observed, so only a watch of more clusters
        // than the snapshot has holds removed ones (checking each name would cost the
        // square of the fleet at every snapshot).
        if self.silent_clusters.len() > clusters.len() {
            let names: std::collections::HashSet<&str> =
                clusters.iter().map(|c| c.name.as_str()).collect();
            self.silent_clusters.retain(|name| names.contains(name));
        }
        for (alert, last_error) in alerts {
            let text = match &alert {
                SilenceAlert::Silent { cluster, for_ } => {
                    let why = last_error
                        .map(|e| format!(" (last error: {})", crate::logging::excerpt(&e, 200)))
                        .unwrap_or_default();
                    log::error!(
                        "cluster={cluster} silent: not watching for {}{why}",
                        seconds(*for_)
                    );
                    format!(
                        ":mute: nightcrier is not watching cluster {cluster}: not active, or its subscription lost, for {}{why}",
                        seconds(*for_)
                    )
                }
                SilenceAlert::Recovered { cluster, after } => {
                    log::warn!(
                        "cluster={cluster} recovered: watching again after {}",
                        seconds(*after)
                    );
                    format!(
                        ":white_check_mark: nightcrier watches cluster {cluster} again (after {})",
                        seconds(*after)
                    )
                }
            };
            self.alert(ctx, &text, "cluster alert");
        }
    }

    /// Names of the clusters reported silent, for the metrics.
    pub(super) fn silent_cluster_names(&self) -> Vec<String> {
        self.silent_clusters.silent().map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn down_is_reported_once_after_the_delay_and_up_once() {
        let mut watch = SilentClusterWatch::new(5 * MIN, 60 * MIN);
        let t0 = Instant::now();
        assert_eq!(watch.observe("a", true, t0), None);
        assert_eq!(watch.observe("a", false, t0 + MIN), None);
        assert_eq!(
            watch.observe("a", false, t0 + 5 * MIN),
            None,
            "4 minutes down"
        );
        assert_eq!(
            watch.observe("a", false, t0 + 6 * MIN),
            Some(SilenceAlert::Silent {
                cluster: "a".into(),
                for_: 5 * MIN
            })
        );
        assert_eq!(watch.observe("a", false, t0 + 30 * MIN), None, "once");
        assert_eq!(watch.silent().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            watch.observe("a", true, t0 + 31 * MIN),
            Some(SilenceAlert::Recovered {
                cluster: "a".into(),
                after: 30 * MIN
            })
        );
        assert_eq!(watch.observe("a", true, t0 + 32 * MIN), None);
        assert_eq!(watch.silent().count(), 0);
    }

    #[test]
    fn a_short_silence_says_nothing() {
        let mut watch = SilentClusterWatch::new(5 * MIN, 60 * MIN);
        let t0 = Instant::now();
        assert_eq!(watch.observe("a", false, t0), None);
        assert_eq!(watch.observe("a", true, t0 + 4 * MIN), None);
        assert_eq!(
            watch.observe("a", false, t0 + 5 * MIN),
            None,
            "the delay starts over"
        );
        assert_eq!(watch.observe("a", false, t0 + 9 * MIN), None);
    }

    #[test]
    fn flapping_gives_one_pair_per_window() {
        let mut watch = SilentClusterWatch::new(MIN, 60 * MIN);
        let t0 = Instant::now();
        let mut messages = 0;
        // Down 2 minutes, up 1 minute, for two hours.
        let mut minute = 0;
        while minute < 120 {
            let down = minute % 3 != 2;
            if watch
                .observe("a", !down, t0 + Duration::from_secs(minute * 60))
                .is_some()
            {
                messages += 1;
            }
            minute += 1;
        }
        // Minute 1: silent, minute 2: recovered; then nothing until minute 61 and 62.
        assert_eq!(messages, 4);
    }

    #[test]
    fn a_silence_within_the_window_is_reported_when_it_outlasts_it() {
        let mut watch = SilentClusterWatch::new(MIN, 10 * MIN);
        let t0 = Instant::now();
        watch.observe("a", false, t0);
        assert!(watch.observe("a", false, t0 + MIN).is_some());
        assert!(watch.observe("a", true, t0 + 2 * MIN).is_some());
        assert_eq!(watch.observe("a", false, t0 + 3 * MIN), None);
        assert_eq!(watch.observe("a", false, t0 + 5 * MIN), None, "damped");
        assert!(matches!(
            watch.observe("a", false, t0 + 11 * MIN),
            Some(SilenceAlert::Silent { for_, .. }) if for_ == 8 * MIN
        ));
    }
}
