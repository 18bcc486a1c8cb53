//! Spend budgets: agent runs per UTC hour and day for the fleet, per cluster and per fault
//! type, and agent seconds per UTC day. The ledger is plain data, saved as `budget.json`
//! under the workspace root so that it survives restarts and reloads.
//!
//! No I/O and no clock: wall time comes in as a parameter.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::BudgetConfig;

/// The ledger's file under the workspace root.
pub const BUDGET_FILE: &str = "budget.json";
/// Fault types counted one by one; the rest share one count (fault types are wire data).
const MAX_FAULT_TYPES: usize = 1000;
const OTHER_FAULT_TYPES: &str = "(other fault types)";
/// Characters of a fault type kept as its key.
const FAULT_TYPE_CHARS: usize = 64;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// What was spent in the current UTC hour and day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BudgetLedger {
    /// Unix time of the hour and the day the counts belong to.
    pub hour_start: u64,
    pub day_start: u64,
    pub fleet_hour: u64,
    pub fleet_day: u64,
    pub clusters_day: BTreeMap<String, u64>,
    pub fault_types_day: BTreeMap<String, u64>,
    pub agent_seconds_day: f64,
    /// Ceilings whose notice was sent, as `budget@window-start`.
    pub notices: BTreeSet<String>,
}

/// A ceiling that was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    /// For operators: `fleet runs per hour (20)`.
    pub what: String,
    /// Stable name, one per ceiling (`runs_per_hour`, `cluster prod-eu-1 runs_per_day`, ...).
    pub key: String,
    /// When its window ends.
    pub until: SystemTime,
}

/// What is left of each ceiling that is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BudgetRemaining {
    pub runs_per_hour: Option<u64>,
    pub runs_per_day: Option<u64>,
    pub agent_seconds_per_day: Option<u64>,
}

fn unix(wall: SystemTime) -> u64 {
    wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn fault_type_key(fault_type: &str) -> String {
    fault_type.chars().take(FAULT_TYPE_CHARS).collect()
}

impl BudgetLedger {
    /// A ledger read back from its file; anything unreadable starts empty (and says why).
    pub fn from_json(text: &str) -> Result<BudgetLedger, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Starts new counts when the hour or the day changed.
    fn roll(&mut self, wall: SystemTime) {
        let now = unix(wall);
        let hour = now - now % HOUR;
        let day = now - now % DAY;
        if self.hour_start != hour {
            self.hour_start = hour;
            self.fleet_hour = 0;
        }
        if self.day_start != day {
            self.day_start = day;
            self.fleet_day = 0;
            self.clusters_day.clear();
            self.fault_types_day.clear();
            self.agent_seconds_day = 0.0;
        }
        let (hour, day) = (self.hour_start, self.day_start);
        self.notices.retain(|notice| {
            notice
                .rsplit_once('@')
                .and_then(|(_, start)| start.parse::<u64>().ok())
                .is_some_and(|start| start == hour || start == day)
        });
    }

    /// Whether one more run fits every ceiling; the first one it does not fit is named.
    pub fn check(
        &mut self,
        limits: &BudgetConfig,
        cluster: &str,
        cluster_limit: Option<u64>,
        fault_type: &str,
        wall: SystemTime,
    ) -> Result<(), Exhausted> {
        self.roll(wall);
        let hour_end = at(self.hour_start + HOUR);
        let day_end = at(self.day_start + DAY);
        let fault_type = fault_type_key(fault_type);
        let type_count = self
            .fault_types_day
            .get(&fault_type)
            .or_else(|| self.fault_types_day.get(OTHER_FAULT_TYPES))
            .copied()
            .unwrap_or(0);
        let seconds_used = self.agent_seconds_day;
        let checks = [
            (
                limits.runs_per_hour,
                self.fleet_hour,
                "runs_per_hour".to_string(),
                "fleet runs per hour".to_string(),
                hour_end,
            ),
            (
                limits.runs_per_day,
                self.fleet_day,
                "runs_per_day".to_string(),
                "fleet runs per day".to_string(),
                day_end,
            ),
            (
                cluster_limit,
                self.clusters_day.get(cluster).copied().unwrap_or(0),
                format!("cluster {cluster} max_runs_per_day"),
                format!("runs per day of cluster {cluster}"),
                day_end,
            ),
            (
                limits.runs_per_day_per_fault_type,
                type_count,
                format!("fault type {fault_type} runs_per_day_per_fault_type"),
                format!("runs per day of fault type {fault_type}"),
                day_end,
            ),
        ];
        for (limit, used, key, what, until) in checks {
            if let Some(limit) = limit.filter(|limit| used >= *limit) {
                return Err(Exhausted {
                    what: format!("{what} ({limit})"),
                    key,
                    until,
                });
            }
        }
        if let Some(limit) = limits.agent_seconds_per_day {
            if seconds_used >= limit as f64 {
                return Err(Exhausted {
                    what: format!("agent seconds per day ({limit})"),
                    key: "agent_seconds_per_day".into(),
                    until: day_end,
                });
            }
        }
        Ok(())
    }

    /// One run was let through.
    pub fn record_run(&mut self, cluster: &str, fault_type: &str, wall: SystemTime) {
        self.roll(wall);
        self.fleet_hour += 1;
        self.fleet_day += 1;
        *self.clusters_day.entry(cluster.to_owned()).or_default() += 1;
        let mut key = fault_type_key(fault_type);
        if !self.fault_types_day.contains_key(&key) && self.fault_types_day.len() >= MAX_FAULT_TYPES
        {
            key = OTHER_FAULT_TYPES.to_owned();
        }
        *self.fault_types_day.entry(key).or_default() += 1;
    }

    /// An agent ran this long.
    pub fn record_seconds(&mut self, duration: Duration, wall: SystemTime) {
        self.roll(wall);
        self.agent_seconds_day += duration.as_secs_f64();
    }

    /// True the first time a ceiling is reached in its window: its notice goes out then.
    pub fn first_notice(&mut self, exhausted: &Exhausted) -> bool {
        let start = unix(exhausted.until).saturating_sub(if exhausted.key == "runs_per_hour" {
            HOUR
        } else {
            DAY
        });
        self.notices.insert(format!("{}@{start}", exhausted.key))
    }

    /// A cluster's runs left today under its own ceiling.
    pub fn cluster_remaining(&self, cluster: &str, limit: u64, wall: SystemTime) -> u64 {
        let day = unix(wall) - unix(wall) % DAY;
        let used = if self.day_start == day {
            self.clusters_day.get(cluster).copied().unwrap_or(0)
        } else {
            0
        };
        limit.saturating_sub(used)
    }

    /// What is left of the fleet's ceilings.
    pub fn remaining(&self, limits: &BudgetConfig, wall: SystemTime) -> BudgetRemaining {
        let now = unix(wall);
        let same_hour = self.hour_start == now - now % HOUR;
        let same_day = self.day_start == now - now % DAY;
        let used = |same: bool, count: u64| if same { count } else { 0 };
        BudgetRemaining {
            runs_per_hour: limits
                .runs_per_hour
                .map(|l| l.saturating_sub(used(same_hour, self.fleet_hour))),
            runs_per_day: limits
                .runs_per_day
                .map(|l| l.saturating_sub(used(same_day, self.fleet_day))),
            agent_seconds_per_day: limits.agent_seconds_per_day.map(|l| {
                let spent = if same_day {
                    self.agent_seconds_day
                } else {
                    0.0
                };
                l.saturating_sub(spent.ceil() as u64)
            }),
        }
    }
}

/// `2026-12-01T12:00:00Z`.
pub fn until_text(until: SystemTime) -> String {
    crate::agent::workspace::rfc3339(until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(hour: u64, minute: u64) -> SystemTime {
        // 2026-12-01T00:00:00Z
        at(1_796_083_200 + hour * HOUR + minute * 60)
    }

    fn limits() -> BudgetConfig {
        BudgetConfig {
            runs_per_hour: Some(3),
            runs_per_day: Some(5),
            runs_per_day_per_fault_type: Some(4),
            agent_seconds_per_day: Some(100),
        }
    }

    #[test]
    fn the_hourly_ceiling_pauses_until_the_next_hour_and_the_daily_one_until_midnight() {
        let mut ledger = BudgetLedger::default();
        let limits = limits();
        for minute in 0..3 {
            let t = wall(10, minute);
            assert!(ledger.check(&limits, "a", None, "CrashLoop", t).is_ok());
            ledger.record_run("a", "CrashLoop", t);
        }
        let refused = ledger
            .check(&limits, "a", None, "OOM", wall(10, 30))
            .unwrap_err();
        assert_eq!(refused.what, "fleet runs per hour (3)");
        assert_eq!(until_text(refused.until), "2026-12-01T11:00:00Z");
        assert!(ledger.first_notice(&refused));
        assert!(!ledger.first_notice(&refused), "one notice per window");
        // The next hour: two more fit the day's five.
        for minute in 0..2 {
            let t = wall(11, minute);
            assert!(ledger.check(&limits, "b", None, "OOM", t).is_ok());
            ledger.record_run("b", "OOM", t);
        }
        let refused = ledger
            .check(&limits, "b", None, "OOM", wall(11, 5))
            .unwrap_err();
        assert_eq!(refused.what, "fleet runs per day (5)");
        assert_eq!(until_text(refused.until), "2026-12-02T00:00:00Z");
        assert!(ledger.first_notice(&refused));
        // A new day starts from zero; old notices are forgotten.
        assert!(ledger.check(&limits, "b", None, "OOM", wall(24, 1)).is_ok());
        assert!(ledger.notices.is_empty(), "{:?}", ledger.notices);
    }

    #[test]
    fn cluster_fault_type_and_agent_seconds_ceilings_hold_on_their_own() {
        let limits = BudgetConfig {
            runs_per_day_per_fault_type: Some(1),
            agent_seconds_per_day: Some(60),
            ..BudgetConfig::default()
        };
        let mut ledger = BudgetLedger::default();
        let t = wall(3, 0);
        assert!(ledger.check(&limits, "a", Some(1), "CrashLoop", t).is_ok());
        ledger.record_run("a", "CrashLoop", t);
        assert_eq!(
            ledger
                .check(&limits, "a", Some(1), "OOM", t)
                .unwrap_err()
                .what,
            "runs per day of cluster a (1)"
        );
        assert_eq!(
            ledger
                .check(&limits, "b", None, "CrashLoop", t)
                .unwrap_err()
                .what,
            "runs per day of fault type CrashLoop (1)"
        );
        assert!(ledger.check(&limits, "b", None, "OOM", t).is_ok());
        ledger.record_seconds(Duration::from_secs(61), t);
        assert_eq!(
            ledger.check(&limits, "b", None, "OOM", t).unwrap_err().what,
            "agent seconds per day (60)"
        );
        assert_eq!(ledger.cluster_remaining("a", 1, t), 0);
        assert_eq!(ledger.cluster_remaining("a", 1, wall(27, 0)), 1);
    }

    #[test]
    fn the_ledger_survives_its_file_and_remaining_counts_down() {
        let limits = limits();
        let mut ledger = BudgetLedger::default();
        let t = wall(9, 0);
        ledger.record_run("a", "CrashLoop", t);
        ledger.record_seconds(Duration::from_millis(2500), t);
        let back = BudgetLedger::from_json(&ledger.to_json()).unwrap();
        assert_eq!(back, ledger);
        let left = back.remaining(&limits, t);
        assert_eq!(left.runs_per_hour, Some(2));
        assert_eq!(left.runs_per_day, Some(4));
        assert_eq!(left.agent_seconds_per_day, Some(97));
        assert_eq!(back.remaining(&limits, wall(10, 0)).runs_per_hour, Some(3));
        assert!(BudgetLedger::from_json("{not json").is_err());
    }

    #[test]
    fn fault_types_from_the_wire_are_bounded() {
        let mut ledger = BudgetLedger::default();
        let t = wall(1, 0);
        for i in 0..(MAX_FAULT_TYPES + 50) {
            ledger.record_run("a", &format!("type-{i}-{}", "x".repeat(500)), t);
        }
        assert_eq!(ledger.fault_types_day.len(), MAX_FAULT_TYPES + 1);
        assert!(ledger
            .fault_types_day
            .keys()
            .all(|k| k.chars().count() <= FAULT_TYPE_CHARS));
        assert_eq!(ledger.fault_types_day[OTHER_FAULT_TYPES], 50);
    }
}
