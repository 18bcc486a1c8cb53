//! Acting on what the session decided: requests to send, faults to deliver, status.

use super::*;

impl ClusterConnection {
    pub(super) fn apply(&mut self, ctx: &mut ConnectionContext, outputs: Vec<Output>) {
        for output in outputs {
            if self.status == ConnectionStatus::Failed {
                return;
            }
            match output {
                Output::Post(request) => {
                    self.queue.push_back(Outgoing::Post(request));
                    self.send_next(ctx);
                }
                Output::OpenStream => self.open_stream(ctx),
                Output::Active { subscription_id } => self.on_active(ctx, &subscription_id),
                Output::Fault(event) => {
                    self.stats.event_count += 1;
                    self.stats.last_event = Some(SystemTime::now());
                    log::debug!(
                        "cluster={} fault {} {} {}",
                        self.config.name,
                        event.fault_id,
                        event.fault_type,
                        event.severity
                    );
                    if event.fault_id_derived {
                        log::warn!(
                            "cluster={} fault without usable faultId; derived key {}",
                            self.config.name,
                            event.fault_id
                        );
                    }
                    ctx.sink.deliver(
                        ClusterEvent {
                            cluster: self.config.clone(),
                            event,
                            received_at: SystemTime::now(),
                        },
                        ctx.now,
                    );
                }
                Output::Degraded(reason) => {
                    self.degraded = true;
                    let delay = self.backoff.next_delay();
                    log::warn!(
                        "cluster={} subscription degraded: {reason}; resubscribing in {:.1}s",
                        self.config.name,
                        delay.as_secs_f64()
                    );
                    self.arm(ctx, TimerKind::Resubscribe, delay);
                }
                Output::Pong => {
                    self.arm(ctx, TimerKind::Ping, ctx.settings.ping_interval);
                }
                Output::Ignored(what) => {
                    self.stats.ignored += 1;
                    log::trace!("cluster={} ignored message: {what}", self.config.name);
                }
                Output::Malformed(what) => {
                    self.stats.malformed += 1;
                    log::warn!(
                        "cluster={} undecodable message #{}: {what}",
                        self.config.name,
                        self.stats.malformed
                    );
                }
                Output::Failed(error) => self.on_session_error(ctx, error),
            }
        }
        if matches!(
            self.status,
            ConnectionStatus::Connecting
                | ConnectionStatus::Connected
                | ConnectionStatus::Subscribing
        ) {
            let implied = status_for_phase(self.session.phase());
            if implied != ConnectionStatus::Active {
                self.set_status(ctx, implied);
            }
        }
    }

    pub(super) fn on_active(&mut self, ctx: &mut ConnectionContext, subscription_id: &str) {
        let resumed = self.status == ConnectionStatus::Active;
        let what = match (resumed, self.degraded) {
            (_, true) => "resubscribed",
            (true, false) => "event stream resumed",
            (false, false) => "subscribed",
        };
        // A subscription error that arrived while this subscribe was in flight armed a
        // resubscribe: the subscription just confirmed is the broken one, so it stays
        // degraded until that resubscribe succeeds.
        if self.timers[TimerKind::Resubscribe.slot()].is_none() {
            self.degraded = false;
        }
        if !resumed {
            self.stats.connected_since = Some(SystemTime::now());
        }
        self.set_status(ctx, ConnectionStatus::Active);
        log::info!(
            "cluster={} {what} (subscription {subscription_id}, protocol {})",
            self.config.name,
            self.session.protocol_version().unwrap_or("?")
        );
        self.arm(ctx, TimerKind::Ping, ctx.settings.ping_interval);
        self.arm(ctx, TimerKind::Stable, ctx.settings.stable_after);
    }

    pub(super) fn on_session_error(&mut self, ctx: &mut ConnectionContext, error: SessionError) {
        let permanent = error.is_permanent();
        let phase = error.phase();
        if error == SessionError::SessionExpired {
            log::info!(
                "cluster={} server forgot the session; starting a new one",
                self.config.name
            );
        }
        self.fail(ctx, phase, error.to_string(), permanent);
    }
}
