//! Failure, backoff, status changes and timers.

use super::*;

impl ClusterConnection {
    pub(super) fn fail(
        &mut self,
        ctx: &mut ConnectionContext,
        phase: &str,
        message: String,
        permanent: bool,
    ) {
        if !self.running() {
            return self.finish_shutdown(ctx);
        }
        if self.status == ConnectionStatus::Active {
            self.stats
                .gaps
                .open(GapCause::SessionFailed, SystemTime::now());
        }
        // The next session ends this one on the server, with its subscriptions.
        self.retire_session();
        // Messages carry wire text (error bodies, JSON-RPC messages, tool text): escaped.
        let message = crate::logging::excerpt(&message, ERROR_MESSAGE_CHARS);
        self.stats.errors.count(phase);
        self.stats.last_error = Some(format!("{phase}: {message}"));
        self.stats.last_error_at = Some(SystemTime::now());
        self.stats.connected_since = None;
        self.close_channels(ctx);
        self.set_status(ctx, ConnectionStatus::Failed);
        log::warn!("cluster={} {phase} failed: {message}", self.config.name);
        self.schedule_retry(ctx, RetryScope::Full, permanent);
    }

    pub(super) fn schedule_retry(
        &mut self,
        ctx: &mut ConnectionContext,
        scope: RetryScope,
        permanent: bool,
    ) {
        for kind in [
            TimerKind::Request,
            TimerKind::StreamOpen,
            TimerKind::Ping,
            TimerKind::Stable,
            TimerKind::Connect,
            TimerKind::ControlIdle,
            TimerKind::Resubscribe,
            TimerKind::Audit,
            TimerKind::EventStall,
        ] {
            self.disarm(ctx, kind);
        }
        let delay = if permanent {
            // Retrying soon cannot help; still retry, since the server may be upgraded.
            self.backoff.max_delay()
        } else {
            self.backoff.next_delay()
        };
        self.retry_scope = scope;
        self.stats.retry_at = Some(ctx.now + delay);
        log::info!(
            "cluster={} {} attempt {} in {:.1}s",
            self.config.name,
            match scope {
                RetryScope::Full => "reconnect",
                RetryScope::Stream => "stream reopen",
            },
            self.backoff.attempts(),
            delay.as_secs_f64()
        );
        self.arm(ctx, TimerKind::Retry, delay);
    }

    pub(super) fn finish_shutdown(&mut self, ctx: &mut ConnectionContext) {
        self.in_flight = None;
        self.queue.clear();
        self.close(ctx);
    }

    pub(super) fn close_channels(&mut self, ctx: &mut ConnectionContext) {
        if let Some(control) = self.control.take() {
            control.http.close(ctx.registry);
        }
        if let Some(stream) = self.stream.take() {
            stream.http.close(ctx.registry);
        }
        self.stream_phase = StreamPhase::Closed;
        self.in_flight = None;
        self.queue.clear();
        // A burst of queued requests gives its memory back with the session.
        self.queue.shrink_to(MAX_QUEUED_ANSWERS);
    }

    pub(super) fn set_status(&mut self, ctx: &mut ConnectionContext, status: ConnectionStatus) {
        self.tried |= matches!(status, ConnectionStatus::Active | ConnectionStatus::Failed);
        if self.status != status {
            ctx.changed = true;
            crate::cluster::status::log_change(&self.config.name, self.status, status);
            self.status = status;
        }
    }

    pub(super) fn arm(&mut self, ctx: &mut ConnectionContext, kind: TimerKind, delay: Duration) {
        self.disarm(ctx, kind);
        let key = TimerKey {
            slot: self.key,
            kind,
        };
        self.timers[kind.slot()] = Some(ctx.timers.insert(ctx.now + delay, key));
    }

    pub(super) fn disarm(&mut self, ctx: &mut ConnectionContext, kind: TimerKind) {
        if let Some(id) = self.timers[kind.slot()].take() {
            ctx.timers.cancel(id);
        }
    }
}
