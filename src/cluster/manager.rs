//! The set of cluster connections: a slab indexed by `SlotKey`, so tokens, timers and DNS
//! answers find their connection in O(1) and a stale one (for a removed cluster) finds none.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use mio::Token;
use serde::Serialize;

use super::connection::{ClusterConnection, ConnectionContext, SlotKey, TimerKey};
use super::status::{ConnectionStatus, HealthSnapshot};
use crate::config::ClusterConfig;
use crate::net::dns::Answer;

struct Slot {
    generation: u32,
    connection: Option<ClusterConnection>,
}

#[derive(Default)]
pub struct Manager {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_name: HashMap<String, SlotKey>,
    /// Connections being shut down individually (removed by a reload).
    retiring: Vec<SlotKey>,
}

/// Aggregate health, as `/health/clusters` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HealthSummary {
    pub total: usize,
    pub active: usize,
    pub unhealthy: usize,
    pub triage_enabled: usize,
}

impl Manager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Starts every enabled cluster; admission orders and paces their first connects.
    pub fn start_all(&mut self, ctx: &mut ConnectionContext, clusters: &[Arc<ClusterConfig>]) {
        // A connection is over a kilobyte inline: no doubling slack for a known count.
        self.slots
            .reserve_exact(clusters.iter().filter(|c| c.enabled).count());
        for config in clusters.iter().filter(|c| c.enabled) {
            self.add(ctx, config.clone());
        }
    }

    /// Lets through the connects admission allows now.
    pub fn admit_connects(&mut self, ctx: &mut ConnectionContext) {
        let mut admitted = Vec::new();
        ctx.admission.admit(ctx.now, &mut admitted);
        for key in admitted {
            if let Some(connection) = self.get_mut(key) {
                connection.on_admitted(ctx);
            }
        }
    }

    /// Adds and starts one cluster. A cluster of the same name must not be present.
    pub fn add(&mut self, ctx: &mut ConnectionContext, config: Arc<ClusterConfig>) -> SlotKey {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    connection: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        let key = SlotKey {
            index,
            generation: slot.generation,
        };
        let mut connection = ClusterConnection::new(config.clone(), key, ctx.settings);
        connection.start(ctx);
        slot.connection = Some(connection);
        self.by_name.insert(config.name.clone(), key);
        key
    }

    /// Closes one cluster gracefully (DELETE of its session); its slot is freed once closed.
    pub fn remove(&mut self, ctx: &mut ConnectionContext, name: &str) -> bool {
        let Some(key) = self.by_name.remove(name) else {
            return false;
        };
        if let Some(connection) = self.get_mut(key) {
            connection.begin_shutdown(ctx);
        }
        self.retiring.push(key);
        self.sweep();
        true
    }

    pub fn get(&self, name: &str) -> Option<&ClusterConnection> {
        let key = *self.by_name.get(name)?;
        self.slots.get(key.index as usize)?.connection.as_ref()
    }

    pub fn get_by_name_mut(&mut self, name: &str) -> Option<&mut ClusterConnection> {
        let key = *self.by_name.get(name)?;
        self.get_mut(key)
    }

    fn get_mut(&mut self, key: SlotKey) -> Option<&mut ClusterConnection> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.connection.as_mut()
    }

    /// Returns true when the socket still has bytes waiting (see `ClusterConnection::on_ready`).
    pub fn on_ready(&mut self, ctx: &mut ConnectionContext, token: Token) -> bool {
        let Some(parts) = SlotKey::from_token(token) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(parts.index as usize) else {
            return false;
        };
        let key = SlotKey {
            index: parts.index,
            generation: slot.generation,
        };
        if !key.matches_generation(parts.slot_generation) {
            return false;
        }
        let more = slot.connection.as_mut().is_some_and(|connection| {
            connection.on_ready(ctx, parts.channel, parts.client_generation)
        });
        self.sweep_if_retiring(key);
        more
    }

    pub fn on_timer(&mut self, ctx: &mut ConnectionContext, timer: TimerKey) {
        if let Some(connection) = self.get_mut(timer.slot) {
            connection.on_timer(ctx, timer.kind);
        }
        self.sweep_if_retiring(timer.slot);
    }

    pub fn on_resolved(&mut self, ctx: &mut ConnectionContext, answer: Answer) {
        let crate::token::DnsOwner::Connection { index, generation } =
            crate::token::dns_owner(answer.key)
        else {
            return;
        };
        let key = SlotKey { index, generation };
        if let Some(connection) = self.get_mut(key) {
            connection.on_resolved(ctx, answer.result);
        }
    }

    pub fn begin_shutdown(&mut self, ctx: &mut ConnectionContext) {
        for slot in &mut self.slots {
            if let Some(connection) = slot.connection.as_mut() {
                connection.begin_shutdown(ctx);
            }
        }
    }

    /// Closes whatever has not finished closing.
    pub fn close_all(&mut self, ctx: &mut ConnectionContext) {
        for slot in &mut self.slots {
            if let Some(connection) = slot.connection.as_mut() {
                if !connection.is_closed() {
                    connection.close(ctx);
                }
            }
        }
    }

    pub fn all_closed(&self) -> bool {
        self.slots
            .iter()
            .filter_map(|s| s.connection.as_ref())
            .all(ClusterConnection::is_closed)
    }

    /// The connections of the configured clusters (not those of removed clusters still
    /// closing).
    fn configured(&self) -> impl Iterator<Item = &ClusterConnection> {
        self.by_name
            .values()
            .filter_map(|key| self.slots.get(key.index as usize)?.connection.as_ref())
    }

    pub fn snapshots(&self, now: Instant) -> Vec<HealthSnapshot> {
        let mut snapshots: Vec<HealthSnapshot> = self
            .configured()
            .map(|connection| connection.snapshot(now))
            .collect();
        snapshots.sort_by(|a, b| a.name.cmp(&b.name));
        snapshots
    }

    /// True while some session is on its way to active (connecting, connected, subscribing):
    /// its replies are not to wait for a batch window.
    pub fn any_setting_up(&self) -> bool {
        self.configured().any(|connection| {
            matches!(
                connection.status(),
                ConnectionStatus::Connecting
                    | ConnectionStatus::Connected
                    | ConnectionStatus::Subscribing
            )
        })
    }

    pub fn summary(&self) -> HealthSummary {
        let mut summary = HealthSummary::default();
        for connection in self.configured() {
            summary.total += 1;
            match connection.status() {
                ConnectionStatus::Active => summary.active += 1,
                ConnectionStatus::Failed | ConnectionStatus::Disconnected => summary.unhealthy += 1,
                _ => {}
            }
            if connection.config().triage_ready() {
                summary.triage_enabled += 1;
            }
        }
        summary
    }

    fn sweep_if_retiring(&mut self, key: SlotKey) {
        if !self.retiring.is_empty() && self.retiring.contains(&key) {
            self.sweep();
        }
    }

    /// Frees the slots of removed clusters that have finished closing.
    fn sweep(&mut self) {
        let slots = &mut self.slots;
        let free = &mut self.free;
        self.retiring.retain(|key| {
            let Some(slot) = slots.get_mut(key.index as usize) else {
                return false;
            };
            let closed = slot
                .connection
                .as_ref()
                .is_none_or(ClusterConnection::is_closed);
            if closed && slot.generation == key.generation {
                slot.connection = None;
                free.push(key.index);
            }
            !closed
        });
    }
}
