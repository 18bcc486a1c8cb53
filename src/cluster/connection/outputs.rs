//! Acting on what the session decided: requests to send, faults to deliver, status, the
//! subscription's checks and gaps.

use super::*;

/// Server log lines are wire text: kept short in our log.
const SERVER_LOG_EXCERPT: usize = 200;

impl ClusterConnection {
    pub(super) fn apply(&mut self, ctx: &mut ConnectionContext, outputs: Vec<Output>) {
        for output in outputs {
            if self.status == ConnectionStatus::Failed {
                return;
            }
            match output {
                Output::Post(request) if request.kind == PostKind::Answer => {
                    self.queue_answer(ctx, request)
                }
                Output::Post(request) => {
                    self.queue.push_back(Outgoing::Post(request));
                    self.send_next(ctx);
                }
                Output::OpenStream => self.open_stream(ctx),
                Output::Active { subscription_id } => self.on_active(ctx, &subscription_id),
                Output::StreamResumed => {
                    log::info!(
                        "cluster={} event stream reopened; checking the subscription",
                        self.config.name
                    );
                }
                Output::SubscriptionConfirmed { subscription_id } => {
                    self.on_confirmed(ctx, &subscription_id)
                }
                Output::SubscriptionLost {
                    subscription_id,
                    reason,
                } => {
                    let since = self
                        .stats
                        .subscription_since
                        .unwrap_or_else(SystemTime::now);
                    self.stats.gaps.open(GapCause::SubscriptionLost, since);
                    crate::limited!(
                        self.log_budget,
                        ctx.now,
                        log::Level::Warn,
                        self.config.name,
                        "cluster={} subscription {} lost: {reason}; subscribing again",
                        self.config.name,
                        crate::logging::excerpt(&subscription_id, 64)
                    );
                }
                Output::Fault(event) => self.deliver(ctx, event),
                Output::Degraded(reason) => {
                    self.degraded = true;
                    let delay = self.backoff.next_delay();
                    crate::limited!(
                        self.log_budget,
                        ctx.now,
                        log::Level::Warn,
                        self.config.name,
                        "cluster={} subscription degraded: {}; resubscribing in {:.1}s",
                        self.config.name,
                        crate::logging::excerpt(&reason, SERVER_LOG_EXCERPT),
                        delay.as_secs_f64()
                    );
                    self.arm(ctx, TimerKind::Resubscribe, delay);
                }
                Output::Pong => {
                    self.arm(ctx, TimerKind::Ping, ctx.settings.ping_interval);
                }
                Output::ServerLog(text) => {
                    self.stats.server_logs += 1;
                    crate::limited!(
                        self.log_budget,
                        ctx.now,
                        log::Level::Info,
                        self.config.name,
                        "cluster={} server says: {}",
                        self.config.name,
                        crate::logging::excerpt(&text, SERVER_LOG_EXCERPT)
                    );
                }
                Output::Ignored(what) => {
                    self.stats.ignored += 1;
                    log::trace!(
                        "cluster={} ignored message: {}",
                        self.config.name,
                        crate::logging::excerpt(&what, SERVER_LOG_EXCERPT)
                    );
                }
                Output::Malformed(what) => {
                    self.stats.malformed += 1;
                    crate::limited!(
                        self.log_budget,
                        ctx.now,
                        log::Level::Warn,
                        self.config.name,
                        "cluster={} undecodable message #{}: {}",
                        self.config.name,
                        self.stats.malformed,
                        crate::logging::excerpt(&what, SERVER_LOG_EXCERPT)
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

    /// Queues an answer to one of the server's requests, within `MAX_QUEUED_ANSWERS` and
    /// `MAX_ANSWER_BYTES`; beyond them the request is counted and left unanswered.
    fn queue_answer(&mut self, ctx: &mut ConnectionContext, request: PostRequest) {
        let waiting = self
            .queue
            .iter()
            .filter(|o| matches!(o, Outgoing::Post(p) if p.kind == PostKind::Answer))
            .count();
        if waiting < MAX_QUEUED_ANSWERS && request.body.len() <= MAX_ANSWER_BYTES {
            self.queue.push_back(Outgoing::Post(request));
            return self.send_next(ctx);
        }
        self.stats.answers_dropped += 1;
        crate::limited!(
            self.log_budget,
            ctx.now,
            log::Level::Warn,
            self.config.name,
            "cluster={} {} requests from the server not answered (at most {MAX_QUEUED_ANSWERS} answers wait at once, each at most {MAX_ANSWER_BYTES} bytes)",
            self.config.name,
            self.stats.answers_dropped
        );
    }

    fn deliver(&mut self, ctx: &mut ConnectionContext, event: FaultEvent) {
        self.count_fault(ctx.now, &event.fault_id, &event.fault_type, &event.severity);
        if event.fault_id_derived {
            log::debug!(
                "cluster={} fault without a faultId; derived key {}",
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

    /// A fault read in place from the stream (see `FaultView`).
    pub(super) fn deliver_view(&mut self, ctx: &mut ConnectionContext, fault: &FaultView<'_>) {
        if fault.key().is_none() {
            // Its key is derived from the bounded fields: the owned path does both.
            return self.deliver(ctx, fault.to_event());
        }
        self.count_fault(ctx.now, &fault.fault_id, &fault.fault_type, &fault.severity);
        ctx.sink.offer(&self.config, fault, ctx.now);
    }

    fn count_fault(&mut self, now: Instant, fault_id: &str, fault_type: &str, severity: &str) {
        self.stats.event_count += 1;
        // The loop's clock: no clock read per fault; a snapshot tells the wall time.
        self.stats.last_event = Some(now);
        log::debug!(
            "cluster={} fault {} {} {}",
            self.config.name,
            fault_id,
            crate::logging::excerpt(fault_type, 64),
            crate::logging::excerpt(severity, 32)
        );
    }

    pub(super) fn on_active(&mut self, ctx: &mut ConnectionContext, subscription_id: &str) {
        let resumed = self.status == ConnectionStatus::Active;
        let what = match (resumed, self.degraded) {
            (_, true) => "resubscribed",
            (true, false) => "subscribed again",
            (false, false) => "subscribed",
        };
        if resumed {
            self.stats.subscription_renewals += 1;
        }
        self.stats.subscription_since = Some(SystemTime::now());
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
            "cluster={} {what} (subscription {}, protocol {})",
            self.config.name,
            crate::logging::excerpt(subscription_id, 64),
            self.session.protocol_version().unwrap_or("?")
        );
        self.close_gap_if_receiving();
        self.arm(ctx, TimerKind::Ping, ctx.settings.ping_interval);
        self.arm(ctx, TimerKind::Stable, ctx.settings.stable_after);
        self.arm(
            ctx,
            TimerKind::Audit,
            ctx.settings.subscription_audit_interval,
        );
    }

    fn on_confirmed(&mut self, ctx: &mut ConnectionContext, subscription_id: &str) {
        log::debug!(
            "cluster={} server still holds subscription {}",
            self.config.name,
            crate::logging::excerpt(subscription_id, 64)
        );
        self.close_gap_if_receiving();
        self.arm(
            ctx,
            TimerKind::Audit,
            ctx.settings.subscription_audit_interval,
        );
    }

    /// Faults flow again once the subscription is confirmed with the stream open.
    fn close_gap_if_receiving(&mut self) {
        if self.stream_phase != StreamPhase::Open {
            return;
        }
        let now = SystemTime::now();
        if let Some(gap) = self.stats.gaps.close(now) {
            let seconds = now
                .duration_since(gap.start)
                .unwrap_or_default()
                .as_secs_f64();
            log::warn!(
                "cluster={} receiving again after a gap of {seconds:.1}s; faults that began in it were not sent by the server",
                self.config.name
            );
        }
    }

    pub(super) fn on_session_error(&mut self, ctx: &mut ConnectionContext, error: SessionError) {
        let permanent = error.is_permanent();
        let phase = error.phase();
        if error == SessionError::SessionExpired {
            log::info!(
                "cluster={} server forgot the session; starting a new one",
                self.config.name
            );
            // Nothing to end on the server.
            self.session.forget_session_id();
        }
        self.fail(ctx, phase, error.to_string(), permanent);
    }
}
