//! Sending: one request at a time on the control connection, with the session's headers.

use super::*;

impl ClusterConnection {
    pub(super) fn send_next(&mut self, ctx: &mut ConnectionContext) {
        if self.in_flight.is_some() {
            return;
        }
        if self.queue.is_empty() {
            if self.control.is_some() && self.status == ConnectionStatus::Active {
                self.arm(
                    ctx,
                    TimerKind::ControlIdle,
                    ctx.settings.control_idle_timeout,
                );
            }
            return;
        }
        self.disarm(ctx, TimerKind::ControlIdle);
        if self.control.is_none() {
            // The server closed the keep-alive connection; open a new one for this request.
            match self.open_client(ctx, Channel::Control) {
                Ok(client) => self.control = Some(client),
                Err(e) => return self.fail(ctx, e.phase(), e.to_string(), false),
            }
            self.arm(ctx, TimerKind::Connect, ctx.settings.connect_timeout);
        }
        let Some(outgoing) = self.queue.pop_front() else {
            return;
        };
        let mut headers = self.session_headers();
        let mut bytes = Vec::new();
        let request = match &outgoing {
            Outgoing::Post(request) => {
                headers.push(("Content-Type", "application/json".to_owned()));
                headers.push(("Accept", "application/json, text/event-stream".to_owned()));
                self.write_http(&mut bytes, "POST", &headers, Some(&request.body));
                Request::Post(request.kind)
            }
            Outgoing::Delete => {
                headers.push(("Accept", "application/json, text/event-stream".to_owned()));
                self.write_http(&mut bytes, "DELETE", &headers, None);
                Request::Delete
            }
            Outgoing::DeleteStale(id) => {
                // The replaced session's own id, not the current one's.
                headers.retain(|(name, _)| *name != "Mcp-Session-Id");
                headers.push(("Mcp-Session-Id", id.clone()));
                headers.push(("Accept", "application/json, text/event-stream".to_owned()));
                self.write_http(&mut bytes, "DELETE", &headers, None);
                Request::DeleteStale(id.clone())
            }
        };
        self.in_flight = Some(InFlight {
            request,
            status: 0,
            body: ReplyBody::Excerpt(Vec::new()),
        });
        self.arm(ctx, TimerKind::Request, ctx.settings.read_timeout);
        let Some(control) = self.control.as_mut() else {
            return;
        };
        control.http.queue(&bytes);
        if let Err(e) = control.http.flush() {
            self.on_client_error(ctx, Channel::Control, e);
        }
    }

    /// Remembers the current session so that the next one ends it (best effort).
    pub(super) fn retire_session(&mut self) {
        let Some(id) = self.session.session_id() else {
            return;
        };
        if self.stale_sessions.iter().any(|s| s.id == id) {
            return;
        }
        if self.stale_sessions.len() == MAX_STALE_SESSIONS {
            let dropped = self.stale_sessions.remove(0);
            log::warn!(
                "cluster={} more than {MAX_STALE_SESSIONS} replaced sessions not yet ended; forgetting {}",
                self.config.name,
                crate::logging::excerpt(&dropped.id, 64)
            );
        }
        self.stale_sessions.push(StaleSession {
            id: id.to_owned(),
            failed_attempts: 0,
        });
    }

    /// A replaced session's DELETE failed (no answer, or a broken one): go on with the queue
    /// on a new connection; the session is tried again with the next new session, and given
    /// up after a few failures.
    pub(super) fn abandon_stale_delete(&mut self, ctx: &mut ConnectionContext, id: &str) {
        self.in_flight = None;
        self.disarm(ctx, TimerKind::Request);
        for stale in self.stale_sessions.iter_mut().filter(|s| s.id == id) {
            stale.failed_attempts = stale.failed_attempts.saturating_add(1);
        }
        let name = &self.config.name;
        self.stale_sessions.retain(|s| {
            let keep = s.failed_attempts < MAX_STALE_DELETE_ATTEMPTS;
            if !keep {
                log::warn!(
                    "cluster={name} giving up ending replaced session {} after {MAX_STALE_DELETE_ATTEMPTS} failed DELETEs; the server keeps its subscriptions until it drops the session",
                    crate::logging::excerpt(&s.id, 64)
                );
            }
            keep
        });
        if let Some(control) = self.control.take() {
            control.http.close(ctx.registry);
        }
        self.send_next(ctx);
    }

    pub(super) fn session_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("User-Agent", USER_AGENT.to_owned())];
        if let Some(id) = self.session.session_id() {
            headers.push(("Mcp-Session-Id", id.to_owned()));
        }
        if let Some(version) = self.session.protocol_version() {
            headers.push(("MCP-Protocol-Version", version.to_owned()));
        }
        if let Some(key) = &self.config.mcp.api_key {
            headers.push(("Authorization", format!("Bearer {}", key.expose())));
        }
        headers
    }

    pub(super) fn write_http(
        &self,
        out: &mut Vec<u8>,
        method: &str,
        headers: &[(&'static str, String)],
        body: Option<&[u8]>,
    ) {
        let endpoint = &self.config.mcp.endpoint;
        let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        write_request(
            out,
            method,
            &endpoint.path,
            &endpoint.host_header,
            &borrowed,
            body,
        );
    }
}
