//! Receiving: replies on the control connection, events on the GET stream, closes and
//! transport errors.

use super::*;

impl ClusterConnection {
    pub(super) fn on_control_event(
        &mut self,
        ctx: &mut ConnectionContext,
        event: ResponseEvent,
        inbound: &[u8],
    ) {
        let max_event_bytes = ctx.settings.max_event_bytes;
        let Some(flight) = self.in_flight.as_mut() else {
            // A response nobody asked for: the server is confused; start over.
            return self.fail(ctx, "stream", "unsolicited HTTP response".into(), false);
        };
        match event {
            ResponseEvent::Head(head) => {
                flight.status = head.status;
                let success = (200..300).contains(&head.status);
                flight.body = if success && head.content_type_is("text/event-stream") {
                    ReplyBody::Events(SseParser::new(max_event_bytes))
                } else if success {
                    ReplyBody::Json(Vec::new())
                } else {
                    ReplyBody::Excerpt(Vec::new())
                };
                if let Some(kind) = flight.request.post_kind() {
                    self.session
                        .on_post_head(kind, head.status, head.header("mcp-session-id"));
                }
            }
            ResponseEvent::Body(range) => {
                let bytes = &inbound[range];
                let mut sse_events = Vec::new();
                let phase = flight.request.phase();
                match &mut flight.body {
                    ReplyBody::Events(parser) => {
                        if let Err(e) = parser.feed(bytes, &mut sse_events) {
                            return self.fail(ctx, phase, format!("reply stream: {e}"), false);
                        }
                        let discarded = parser.take_discarded();
                        self.on_discarded(ctx, discarded);
                    }
                    ReplyBody::Json(body) => {
                        if body.len() + bytes.len() > max_event_bytes {
                            return self.fail(
                                ctx,
                                phase,
                                format!("reply larger than {max_event_bytes} bytes"),
                                false,
                            );
                        }
                        body.extend_from_slice(bytes);
                    }
                    ReplyBody::Excerpt(body) => {
                        let room = EXCERPT_BYTES.saturating_sub(body.len());
                        body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                }
                self.on_sse_events(ctx, &sse_events);
            }
            ResponseEvent::End { reusable } => self.on_reply_end(ctx, reusable),
        }
    }

    fn on_reply_end(&mut self, ctx: &mut ConnectionContext, reusable: bool) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        self.disarm(ctx, TimerKind::Request);
        if !reusable {
            if let Some(control) = self.control.take() {
                control.http.close(ctx.registry);
            }
        }
        let mut outputs = Vec::new();
        let excerpt = match &flight.body {
            ReplyBody::Json(body) if !body.is_empty() => {
                match std::str::from_utf8(body) {
                    Ok(text) => self.session.on_message(text, &mut outputs),
                    Err(_) => outputs.push(Output::Malformed("reply is not UTF-8".into())),
                }
                String::new()
            }
            ReplyBody::Excerpt(body) => String::from_utf8_lossy(body).into_owned(),
            _ => String::new(),
        };
        match flight.request {
            Request::Post(kind) => {
                self.session
                    .on_post_end(kind, flight.status, &excerpt, &mut outputs)
            }
            Request::Delete => {
                // DELETE answered (204, or 404/405 from servers that forgot or never
                // support it): the session is over either way.
                log::info!(
                    "cluster={} session closed (DELETE → {})",
                    self.config.name,
                    flight.status
                );
                return self.finish_shutdown(ctx);
            }
            Request::DeleteStale(id) => {
                log::debug!(
                    "cluster={} replaced session ended (DELETE → {})",
                    self.config.name,
                    flight.status
                );
                self.stale_sessions.retain(|s| s.id != id);
            }
        }
        self.apply(ctx, outputs);
        if self.status != ConnectionStatus::Failed {
            self.send_next(ctx);
        }
    }

    pub(super) fn on_stream_event(
        &mut self,
        ctx: &mut ConnectionContext,
        event: ResponseEvent,
        inbound: &[u8],
    ) {
        match event {
            ResponseEvent::Head(head) => {
                self.disarm(ctx, TimerKind::StreamOpen);
                let replay_refused = head.status == 400
                    && self.stream_phase
                        == (StreamPhase::Opening {
                            last_event_id_sent: true,
                        });
                if replay_refused {
                    // The server cannot replay: open again without Last-Event-ID.
                    log::warn!(
                        "cluster={} server refused Last-Event-ID replay; reopening stream without it",
                        self.config.name
                    );
                    self.stream_sse = SseParser::new(ctx.settings.max_event_bytes);
                    return self.open_stream(ctx);
                }
                let is_events = head.content_type_is("text/event-stream");
                self.stream_phase = if head.status == 200 && is_events {
                    StreamPhase::Open
                } else {
                    StreamPhase::Closed
                };
                let mut outputs = Vec::new();
                self.session
                    .on_stream_head(head.status, is_events, &mut outputs);
                self.apply(ctx, outputs);
            }
            ResponseEvent::Body(range) => {
                if self.stream_phase != StreamPhase::Open {
                    return;
                }
                let mut sse_events = std::mem::take(&mut ctx.inbound.sse.events);
                let ended_before = self.stream_sse.events_ended();
                if let Some(spare) = ctx.inbound.sse.take_spare() {
                    if let Some(unused) = self.stream_sse.lend(spare) {
                        ctx.inbound.sse.give_back(unused);
                    }
                }
                let fed = self.stream_sse.feed(&inbound[range], &mut sse_events);
                if let Some(buffer) = self.stream_sse.reclaim() {
                    ctx.inbound.sse.give_back(buffer);
                }
                if let Err(e) = fed {
                    return self.fail(ctx, "stream", e.to_string(), false);
                }
                let discarded = self.stream_sse.take_discarded();
                self.on_discarded(ctx, discarded);
                // Each event that started must end within the read timeout; one that
                // trickles in forever marks the stream stalled. Silence between events is
                // healthy, and so is a fire hose whose reads all end mid-event.
                let new_event = self.stream_sse.events_ended() != ended_before;
                if !self.stream_sse.in_event() {
                    self.disarm(ctx, TimerKind::EventStall);
                } else if new_event || self.timers[TimerKind::EventStall.slot()].is_none() {
                    self.arm(ctx, TimerKind::EventStall, ctx.settings.read_timeout);
                }
                self.on_sse_events(ctx, &sse_events);
                for event in sse_events.drain(..) {
                    ctx.inbound.sse.give_back(event.data);
                }
                ctx.inbound.sse.events = sse_events;
            }
            ResponseEvent::End { .. } => self.on_closed(ctx, Channel::Stream),
        }
    }

    /// Events dropped for invalid UTF-8: each is one malformed message, nothing more.
    fn on_discarded(&mut self, ctx: &mut ConnectionContext, discarded: u64) {
        if discarded > 0 {
            let outputs = (0..discarded)
                .map(|_| Output::Malformed("event is not UTF-8; dropped".into()))
                .collect();
            self.apply(ctx, outputs);
        }
    }

    pub(super) fn on_sse_events(&mut self, ctx: &mut ConnectionContext, events: &[SseEvent]) {
        if events.is_empty() {
            return;
        }
        let mut outputs = Vec::new();
        for event in events {
            if event.event != "message" || event.data.is_empty() {
                continue;
            }
            // A fault, the message a live stream carries over and over, is handed on in
            // place; whatever came before it is acted on first, so the order holds.
            let mut fault = FaultView::default();
            if self.session.read_fault(&event.data, &mut fault) {
                if !outputs.is_empty() {
                    self.apply(ctx, std::mem::take(&mut outputs));
                }
                if self.status != ConnectionStatus::Failed {
                    self.deliver_view(ctx, &fault);
                }
            } else {
                self.session.on_message(&event.data, &mut outputs);
            }
        }
        if let Some(floor) = self.stream_sse.retry() {
            self.backoff.set_floor(floor);
        }
        if !outputs.is_empty() {
            self.apply(ctx, outputs);
        }
    }

    pub(super) fn on_closed(&mut self, ctx: &mut ConnectionContext, channel: Channel) {
        match channel {
            Channel::Control => {
                if let Some(control) = self.control.take() {
                    control.http.close(ctx.registry);
                }
                if !self.running() {
                    return self.finish_shutdown(ctx);
                }
                match self.in_flight.as_ref().map(|f| f.request.clone()) {
                    Some(Request::DeleteStale(id)) => self.abandon_stale_delete(ctx, &id),
                    Some(_) => self.fail(
                        ctx,
                        "stream",
                        "server closed the connection mid-request".into(),
                        false,
                    ),
                    // An idle keep-alive connection closed by the server is normal; the
                    // next request opens a new one.
                    None => {}
                }
            }
            Channel::Stream => {
                if let Some(stream) = self.stream.take() {
                    stream.http.close(ctx.registry);
                }
                if !self.running() {
                    return;
                }
                self.disarm(ctx, TimerKind::StreamOpen);
                let was_open = self.stream_phase == StreamPhase::Open;
                self.stream_phase = StreamPhase::Closed;
                if self.status == ConnectionStatus::Active && was_open {
                    self.stats.stream_gaps += 1;
                    self.stats
                        .gaps
                        .open(GapCause::StreamEnded, SystemTime::now());
                    // The server cannot replay, and it cancels our subscription when a fault
                    // finds no stream: reopen, then check the subscription.
                    log::warn!(
                        "cluster={} event stream ended (gap #{}): faults the server finds before it reopens are lost",
                        self.config.name,
                        self.stats.stream_gaps
                    );
                    self.schedule_retry(ctx, RetryScope::Stream, false);
                } else {
                    self.fail(ctx, "stream", "event stream closed by server".into(), false);
                }
            }
        }
    }

    pub(super) fn on_client_error(
        &mut self,
        ctx: &mut ConnectionContext,
        channel: Channel,
        error: ClientError,
    ) {
        if !self.running() {
            return self.finish_shutdown(ctx);
        }
        if channel == Channel::Stream
            && self.status == ConnectionStatus::Active
            && self.stream_phase == StreamPhase::Open
        {
            // A broken stream on a live session is a gap, not a dead session: reopen the GET
            // first; a 404 then tells whether the session is gone too.
            log::warn!(
                "cluster={} event stream broke: {}",
                self.config.name,
                crate::logging::excerpt(&error.to_string(), ERROR_MESSAGE_CHARS)
            );
            return self.on_closed(ctx, Channel::Stream);
        }
        if channel == Channel::Control
            && matches!(error, ClientError::Connect(_))
            && self.try_next_address(ctx)
        {
            return;
        }
        let request = self.in_flight.as_ref().map(|f| f.request.clone());
        if let (Channel::Control, Some(Request::DeleteStale(id))) = (channel, &request) {
            // The server took the connection but broke the DELETE's reply: go on without
            // it. A connect error keeps the session for the next attempt.
            if matches!(error, ClientError::Io(_) | ClientError::Http(_)) {
                return self.abandon_stale_delete(ctx, id);
            }
        }
        let what = match channel {
            Channel::Control => "control connection",
            Channel::Stream => "event stream",
        };
        // Connect and TLS errors name their own phase; a broken reply belongs to the
        // request it answered.
        let phase = match (
            &error,
            channel,
            request.as_ref().and_then(Request::post_kind),
        ) {
            (ClientError::Io(_) | ClientError::Http(_), Channel::Control, Some(kind)) => {
                kind.phase()
            }
            _ => error.phase(),
        };
        self.fail(ctx, phase, format!("{what}: {error}"), false);
    }
}
