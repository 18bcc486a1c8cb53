//! Connecting: resolve, open the control connection (plain or TLS), open the GET stream.

use super::*;

impl ClusterConnection {
    pub(super) fn connect(&mut self, ctx: &mut ConnectionContext) {
        self.close_channels(ctx);
        self.set_status(ctx, ConnectionStatus::Connecting);
        self.retry_scope = RetryScope::Full;
        // Armed before the lookup: a resolver that never answers must not leave the
        // cluster connecting for ever. It also covers the first address's connect.
        self.arm(ctx, TimerKind::Connect, ctx.settings.connect_timeout);
        self.candidates.clear();
        self.candidate = 0;
        let endpoint = &self.config.mcp.endpoint;
        if let Some(result) =
            ctx.resolver
                .resolve(self.key.dns_key(), &endpoint.host, endpoint.port)
        {
            self.on_resolved(ctx, result);
        }
    }

    /// Opens a new HTTP client for `channel` with the next generation.
    pub(super) fn open_client(
        &mut self,
        ctx: &mut ConnectionContext,
        channel: Channel,
    ) -> Result<Client, ClientError> {
        let Some(addr) = self.addr else {
            return Err(ClientError::Connect(io::Error::other(
                "no resolved address",
            )));
        };
        let mcp = &self.config.mcp;
        let tls = if mcp.endpoint.tls {
            if mcp.insecure_skip_tls_verify {
                log::warn!(
                    "cluster={} TLS certificate verification is OFF (insecure_skip_tls_verify)",
                    self.config.name
                );
            }
            let config = ctx
                .tls
                .get(mcp.ca_file.as_deref(), mcp.insecure_skip_tls_verify)
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            let name = tls::server_name(&mcp.endpoint.host)
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            Some(TlsTarget { config, name })
        } else {
            None
        };
        let max_body = match channel {
            Channel::Control => Some(ctx.settings.max_event_bytes),
            Channel::Stream => None,
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let request = dialer::DialRequest {
            token: self.key.token(channel, generation),
            addr,
            tls,
            keepalive: ctx.settings.tcp_keepalive,
            max_head_bytes: ctx.settings.max_header_bytes,
            max_body_bytes: max_body,
        };
        let http = ctx.dialer.dial(ctx.registry, request)?;
        Ok(Client { http, generation })
    }

    pub(super) fn open_stream(&mut self, ctx: &mut ConnectionContext) {
        if let Some(old) = self.stream.take() {
            old.http.close(ctx.registry);
        }
        let mut client = match self.open_client(ctx, Channel::Stream) {
            Ok(client) => client,
            Err(e) => return self.fail(ctx, e.phase(), e.to_string(), false),
        };
        self.stream_sse.reset_stream();
        let last_event_id = self.stream_sse.last_event_id().map(str::to_owned);
        self.stream_phase = StreamPhase::Opening {
            last_event_id_sent: last_event_id.is_some(),
        };
        let mut headers = self.session_headers();
        headers.push(("Accept", "text/event-stream".to_owned()));
        headers.push(("Cache-Control", "no-cache".to_owned()));
        if let Some(id) = last_event_id {
            headers.push(("Last-Event-ID", id));
        }
        let mut bytes = Vec::new();
        self.write_http(&mut bytes, "GET", &headers, None);
        client.http.queue(&bytes);
        if let Err(e) = client.http.flush() {
            return self.fail(ctx, e.phase(), e.to_string(), false);
        }
        self.stream = Some(client);
        if self.status != ConnectionStatus::Active {
            self.set_status(ctx, ConnectionStatus::Subscribing);
        }
        self.arm(
            ctx,
            TimerKind::StreamOpen,
            ctx.settings.connect_timeout + ctx.settings.read_timeout,
        );
    }
}
