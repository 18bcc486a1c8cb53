//! The one thread that owns everything that moves: a `mio::Poll` over every cluster's
//! sockets, the stage's sockets (Slack deliveries), the waker of the side threads (DNS,
//! preflight, commands) and the signals. The earliest timer is the poll timeout, so an idle
//! daemon sleeps until something is due.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::batch_window::{BatchWindow, Turn, Wakeups};
use crate::cluster::admission::ConnectAdmission;
use crate::cluster::connection::{ConnectionContext, ConnectionSettings, TcpDialer, TimerKey};
use crate::cluster::manager::Manager;
use crate::config::ClusterConfig;
use crate::health::board::{HealthBoard, Published};
use crate::net::dns::Resolver;
use crate::net::tls::TlsConfigs;
use crate::net::transport::ReadBuffers;
use crate::reload::{self, Reloader};
use crate::stage::{Stage, StageContext};
use crate::timer::TimerWheel;
use crate::token::{Channel, Owner, SIGNALS, WAKER};

const TIMER_TICK: Duration = Duration::from_millis(5);
const TIMER_SLOTS: usize = 4096;
const EVENTS_CAPACITY: usize = 1024;
/// After SIGKILL, how long children get to be reaped (their results written) before exit.
const FINAL_REAP_WAIT: Duration = Duration::from_secs(2);

/// Asks the loop to do something from another thread.
#[derive(Debug)]
pub enum Command {
    Shutdown,
    /// Same as SIGHUP.
    Reload,
    /// The silences made through the admin API, all of them, after a change.
    Silences(Arc<Vec<crate::silence::Silence>>),
}

/// A cloneable way to reach a running loop.
#[derive(Clone)]
pub struct LoopHandle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

impl LoopHandle {
    pub fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            // The loop is gone if waking fails; nothing is left to tell.
            let _ = self.waker.wake();
        }
    }

    pub fn shutdown(&self) {
        self.send(Command::Shutdown);
    }
}

/// Which signals the loop takes into its poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalSet {
    /// SIGTERM, SIGINT, SIGHUP and SIGCHLD: the daemon.
    All,
    /// SIGCHLD only: a loop embedded in a process that handles its own termination (tests).
    ChildOnly,
    None,
}

pub struct LoopOptions {
    pub settings: ConnectionSettings,
    /// How long sessions and agents get to finish on shutdown.
    pub shutdown_timeout: Duration,
    /// How often the health snapshot is refreshed even without status changes; `None` when
    /// nothing reads it (no health server), so none is built.
    pub publish_interval: Option<Duration>,
    pub signals: SignalSet,
    /// Where SIGHUP reads the configuration again; `None` ignores SIGHUP.
    pub reloader: Option<Reloader>,
}

pub struct EventLoop<S: Stage> {
    poll: Poll,
    waker: Arc<Waker>,
    commands: Receiver<Command>,
    command_sender: Sender<Command>,
    signals: Option<Signals>,
    resolver: Resolver,
    timers: TimerWheel<TimerKey>,
    tls: TlsConfigs,
    inbound: ReadBuffers,
    admission: ConnectAdmission,
    /// Sockets that had more to read than one read budget: served again, round-robin,
    /// before the loop sleeps.
    backlog: Vec<Token>,
    manager: Manager,
    stage: S,
    board: HealthBoard,
    batch: BatchWindow,
    wakeups: Wakeups,
    options: LoopOptions,
}

/// Where a shutdown stands.
struct Stopping {
    since: Instant,
    kill_at: Option<Instant>,
    killed_at: Option<Instant>,
}

impl Stopping {
    fn next_deadline(&self, timeout: Duration) -> Instant {
        match (self.killed_at, self.kill_at) {
            (Some(killed), _) => killed + FINAL_REAP_WAIT,
            (None, Some(kill)) => kill,
            (None, None) => self.since + timeout,
        }
    }
}

impl<S: Stage> EventLoop<S> {
    pub fn new(options: LoopOptions, stage: S, board: HealthBoard) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (command_sender, commands) = mpsc::channel();
        let wanted: &[i32] = match options.signals {
            SignalSet::All => &[SIGTERM, SIGINT, SIGHUP, SIGCHLD],
            SignalSet::ChildOnly => &[SIGCHLD],
            SignalSet::None => &[],
        };
        let signals = if wanted.is_empty() {
            None
        } else {
            let mut signals = Signals::new(wanted.iter().copied())?;
            poll.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)?;
            Some(signals)
        };
        let resolver = Resolver::start(waker.clone())?;
        Ok(EventLoop {
            poll,
            waker,
            commands,
            command_sender,
            signals,
            resolver,
            timers: TimerWheel::new(Instant::now(), TIMER_TICK, TIMER_SLOTS),
            tls: TlsConfigs::new(),
            inbound: ReadBuffers::with_capacity(16 * 1024),
            admission: ConnectAdmission::default(),
            backlog: Vec::new(),
            manager: Manager::new(),
            stage,
            board,
            batch: BatchWindow::new(options.settings.batch_window),
            wakeups: Wakeups::default(),
            options,
        })
    }

    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            commands: self.command_sender.clone(),
            waker: self.waker.clone(),
        }
    }

    pub fn stage(&self) -> &S {
        &self.stage
    }

    /// Connects every enabled cluster and runs until shutdown, then closes the sessions.
    pub fn run(&mut self, clusters: &[Arc<ClusterConfig>]) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut fired = Vec::new();
        let mut now = Instant::now();
        let mut stopping: Option<Stopping> = None;
        let mut pacer = self
            .options
            .publish_interval
            .map(|i| PublishPacer::new(i, now));
        // Cluster statuses changed in the last turn; true at first, so that the first turn
        // looks at the sessions being set up.
        let mut changed = true;
        // What the last turn handled, and how long the poll before it slept.
        let mut turn = Turn::default();
        let mut slept = Duration::ZERO;
        let mut setup_under_way = true;
        // The turn before was one that read what came during a batch wait.
        let mut waited = false;

        self.with_stage(now, |stage, ctx| stage.start(ctx));
        {
            let (manager, mut ctx) = self.connection_parts(now);
            manager.start_all(&mut ctx, clusters);
        }

        loop {
            self.with_stage(now, |stage, ctx| stage.on_tick(ctx));
            let statuses_changed = std::mem::take(&mut changed);
            if statuses_changed {
                setup_under_way = self.manager.any_setting_up();
            }
            if let Some(pacer) = pacer.as_mut() {
                if statuses_changed {
                    pacer.note_change();
                }
                if pacer.due(now) {
                    self.publish(now, stopping.is_some());
                    pacer.published(now);
                }
            }
            if let Some(stop) = stopping.as_mut() {
                if self.advance_shutdown(stop, now) {
                    let (manager, mut ctx) = self.connection_parts(now);
                    manager.close_all(&mut ctx);
                    if self.options.publish_interval.is_some() {
                        self.publish(now, true);
                    }
                    return Ok(());
                }
            }

            let mut deadline = pacer.as_ref().map(PublishPacer::next_deadline);
            for candidate in [
                self.timers.next_deadline(),
                self.admission.next_deadline(),
                self.stage.next_deadline(),
                stopping
                    .as_ref()
                    .map(|s| s.next_deadline(self.options.shutdown_timeout)),
            ]
            .into_iter()
            .flatten()
            {
                deadline = Some(deadline.map_or(candidate, |d| d.min(candidate)));
            }
            if stopping.is_none() {
                let until_deadline = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                turn.setup_under_way = setup_under_way;
                if std::mem::take(&mut waited) {
                    self.batch.after_wait(turn);
                }
                if let Some(pause) = self.batch.pause(turn, slept, until_deadline) {
                    self.wakeups.batch_waits += 1;
                    std::thread::sleep(pause);
                    waited = true;
                }
            }
            // No deadline at all: only a socket, a signal or the waker can have work.
            let polled_at = Instant::now();
            let timeout = if self.backlog.is_empty() {
                deadline.map(|d| d.saturating_duration_since(polled_at))
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            now = Instant::now();
            slept = now.saturating_duration_since(polled_at);
            turn = Turn::default();
            self.wakeups.polls += 1;

            let mut woken = false;
            let mut signalled = false;
            let mut more = Vec::new();
            for event in events.iter() {
                let token = event.token();
                match crate::token::owner(token) {
                    Owner::Waker => woken = true,
                    Owner::Signals => signalled = true,
                    Owner::Stage(_) => {
                        turn.other_work = true;
                        self.with_stage(now, |stage, ctx| stage.on_ready(ctx, token));
                    }
                    Owner::Connection(connection) => {
                        match connection.channel {
                            Channel::Stream => turn.stream_reads = true,
                            Channel::Control => turn.other_work = true,
                        }
                        // Without the peer's close in the event, a short read drains.
                        self.inbound.short_read_drains =
                            !(event.is_read_closed() || event.is_error());
                        let (manager, mut ctx) = self.connection_parts(now);
                        if manager.on_ready(&mut ctx, token) {
                            more.push(token);
                        }
                        changed |= ctx.changed;
                        self.inbound.short_read_drains = false;
                        turn.full_chunk |= std::mem::take(&mut self.inbound.took_full_chunk);
                    }
                    Owner::Unknown => {}
                }
            }
            // Sockets left with bytes in an earlier round get one more budget each.
            if !self.backlog.is_empty() {
                let earlier = std::mem::take(&mut self.backlog);
                let (manager, mut ctx) = self.connection_parts(now);
                for token in earlier {
                    if !more.contains(&token) && manager.on_ready(&mut ctx, token) {
                        more.push(token);
                    }
                }
                changed |= ctx.changed;
                turn.full_chunk |= std::mem::take(&mut self.inbound.took_full_chunk);
            }
            self.backlog = more;
            self.timers.expire(now, &mut fired);
            turn.other_work |= woken || signalled || !self.backlog.is_empty() || !fired.is_empty();
            if !fired.is_empty() {
                let (manager, mut ctx) = self.connection_parts(now);
                for timer in fired.drain(..) {
                    manager.on_timer(&mut ctx, timer);
                }
                changed |= ctx.changed;
            }
            if !self.admission.is_empty() {
                turn.other_work = true;
                let (manager, mut ctx) = self.connection_parts(now);
                manager.admit_connects(&mut ctx);
                changed |= ctx.changed;
            }
            let mut stop = false;
            let mut reload = false;
            if signalled {
                let (stop_requested, child_exited, reload_requested) = self.take_signals();
                stop |= stop_requested;
                reload |= reload_requested;
                if child_exited {
                    self.with_stage(now, |stage, ctx| stage.on_child_exit(ctx));
                }
            }
            if woken {
                let (stop_requested, reload_requested) = self.on_wake(now, &mut changed);
                stop |= stop_requested;
                reload |= reload_requested;
            }
            if reload && stopping.is_none() {
                changed |= self.reload(now);
            }
            if stop && stopping.is_none() {
                log::info!(
                    "shutting down: closing {} cluster sessions",
                    self.manager.len()
                );
                stopping = Some(Stopping {
                    since: now,
                    kill_at: None,
                    killed_at: None,
                });
                let (manager, mut ctx) = self.connection_parts(now);
                manager.begin_shutdown(&mut ctx);
                self.with_stage(now, |stage, ctx| stage.begin_shutdown(ctx));
                changed = true;
            }
        }
    }

    /// Returns true when the shutdown is complete: everything closed and drained, or the
    /// last resort — killed work given `FINAL_REAP_WAIT` to be reaped — has run out.
    fn advance_shutdown(&mut self, stop: &mut Stopping, now: Instant) -> bool {
        if self.manager.all_closed() && self.stage.is_drained() {
            return true;
        }
        if let Some(killed_at) = stop.killed_at {
            if now >= killed_at + FINAL_REAP_WAIT {
                log::error!("shutdown: work still running after SIGKILL; exiting anyway");
                return true;
            }
            return false;
        }
        if let Some(kill_at) = stop.kill_at {
            if now >= kill_at {
                self.with_stage(now, |stage, ctx| stage.kill(ctx));
                stop.killed_at = Some(now);
            }
            return false;
        }
        if now >= stop.since + self.options.shutdown_timeout {
            log::warn!(
                "shutdown timeout ({:?}) passed; stopping what is still running",
                self.options.shutdown_timeout
            );
            let grace = self.with_stage(now, |stage, ctx| stage.terminate(ctx));
            stop.kill_at = Some(now + grace);
            let (manager, mut ctx) = self.connection_parts(now);
            manager.close_all(&mut ctx);
        }
        false
    }

    /// DNS answers, commands and side-thread results. Returns (stop, reload) requests.
    fn on_wake(&mut self, now: Instant, changed: &mut bool) -> (bool, bool) {
        let answers: Vec<_> = self.resolver.answers().collect();
        for answer in answers {
            if let crate::token::DnsOwner::Stage(_) = crate::token::dns_owner(answer.key) {
                self.with_stage(now, |stage, ctx| stage.on_resolved(ctx, answer));
            } else {
                let (manager, mut ctx) = self.connection_parts(now);
                manager.on_resolved(&mut ctx, answer);
                *changed |= ctx.changed;
            }
        }
        self.with_stage(now, |stage, ctx| stage.on_wake(ctx));
        let (mut stop, mut reload) = (false, false);
        for command in self.commands.try_iter() {
            match command {
                Command::Shutdown => stop = true,
                Command::Reload => reload = true,
                Command::Silences(silences) => self.stage.set_runtime_silences(silences),
            }
        }
        (stop, reload)
    }

    /// Returns (stop requested, a child exited, reload requested).
    fn take_signals(&mut self) -> (bool, bool, bool) {
        let Some(signals) = self.signals.as_mut() else {
            return (false, false, false);
        };
        let (mut stop, mut child, mut reload) = (false, false, false);
        for signal in signals.pending() {
            match signal {
                SIGTERM | SIGINT => {
                    log::info!(
                        "received {}",
                        if signal == SIGTERM {
                            "SIGTERM"
                        } else {
                            "SIGINT"
                        }
                    );
                    stop = true;
                }
                SIGHUP => reload = true,
                SIGCHLD => child = true,
                _ => {}
            }
        }
        (stop, child, reload)
    }

    /// Reads the configuration again and applies the difference; an invalid file changes
    /// nothing. Returns true when cluster statuses may have changed.
    fn reload(&mut self, now: Instant) -> bool {
        let Some(reloader) = self.options.reloader.as_mut() else {
            log::warn!("reload requested, but this loop has no configuration file to read");
            return false;
        };
        log::info!("reloading {}", reloader.current.source.display());
        let new = match (reloader.source)() {
            Ok(config) => config,
            Err(errors) => {
                for error in errors.iter() {
                    log::error!("reload refused: {error}");
                }
                log::error!(
                    "configuration reload failed ({} problems); still running on the previous configuration",
                    errors.len()
                );
                self.stage.reload_failed();
                return false;
            }
        };
        let plan = reload::plan(&reloader.current, &new, &reloader.started);
        reloader.current = new;
        let Some(config) = self.options.reloader.as_ref().map(|r| r.current.clone()) else {
            return false;
        };
        self.options.settings = ConnectionSettings::from_config(&config);
        self.batch.set_window(self.options.settings.batch_window);
        // A CA file may have new contents under the same path.
        self.tls.clear();
        {
            let (manager, mut ctx) = self.connection_parts(now);
            for name in &plan.stop {
                manager.remove(&mut ctx, name);
            }
            for cluster in &plan.reconnect {
                manager.remove(&mut ctx, &cluster.name);
                manager.add(&mut ctx, cluster.clone());
            }
            for cluster in &plan.start {
                manager.add(&mut ctx, cluster.clone());
            }
            for cluster in &plan.update {
                if let Some(connection) = manager.get_by_name_mut(&cluster.name) {
                    connection.update_config(cluster.clone());
                }
            }
        }
        self.with_stage(now, |stage, ctx| stage.apply_reload(ctx, &config, &plan));
        log::info!("configuration reloaded: {}", plan.describe());
        let enabled = crate::registry::Registry::load(&config).enabled().len();
        crate::limits::apply_fd_limit(enabled, config.agent.max_concurrent_agents, false);
        for setting in &plan.needs_restart {
            log::warn!("reload: the change to `{setting}` takes effect only after a restart");
        }
        true
    }

    fn publish(&mut self, now: Instant, stopping: bool) {
        let clusters = self.manager.snapshots(now);
        self.with_stage(now, |stage, ctx| stage.on_cluster_health(ctx, &clusters));
        self.board.publish(Published {
            clusters,
            summary: self.manager.summary(),
            pipeline: self.stage.snapshot(),
            at: now,
            wall: SystemTime::now(),
            sequence: 0,
            stopping,
            wakeups: self.wakeups,
        });
    }

    fn with_stage<R>(&mut self, now: Instant, f: impl FnOnce(&mut S, &mut StageContext) -> R) -> R {
        let mut ctx = StageContext {
            now,
            registry: self.poll.registry(),
            resolver: &self.resolver,
            tls: &mut self.tls,
            inbound: &mut self.inbound,
            waker: &self.waker,
        };
        f(&mut self.stage, &mut ctx)
    }

    /// Splits the loop into the manager and the context its connections borrow.
    fn connection_parts(&mut self, now: Instant) -> (&mut Manager, ConnectionContext<'_>) {
        let ctx = ConnectionContext {
            now,
            registry: self.poll.registry(),
            timers: &mut self.timers,
            resolver: &self.resolver,
            tls: &mut self.tls,
            inbound: &mut self.inbound,
            sink: &mut self.stage,
            settings: &self.options.settings,
            admission: &mut self.admission,
            dialer: &TcpDialer,
            changed: false,
        };
        (&mut self.manager, ctx)
    }
}

/// Status changes are published at most this often (or every `publish_interval`, if that
/// is shorter): building a snapshot clones and sorts every cluster's health, which must
/// not happen on every loop iteration of a reconnect storm.
const PUBLISH_GAP: Duration = Duration::from_millis(100);

/// When the loop publishes a snapshot: every `interval`, and within [`PUBLISH_GAP`] of a
/// status change.
#[derive(Debug)]
struct PublishPacer {
    interval: Duration,
    gap: Duration,
    next: Instant,
    last: Option<Instant>,
    pending: bool,
}

impl PublishPacer {
    fn new(interval: Duration, now: Instant) -> PublishPacer {
        PublishPacer {
            interval,
            gap: interval.min(PUBLISH_GAP),
            next: now,
            last: None,
            pending: false,
        }
    }

    fn note_change(&mut self) {
        self.pending = true;
    }

    fn due(&self, now: Instant) -> bool {
        now >= self.next_deadline()
    }

    fn published(&mut self, now: Instant) {
        self.pending = false;
        self.last = Some(now);
        self.next = now + self.interval;
    }

    /// When the next snapshot is due: the regular one, or a pending change's.
    fn next_deadline(&self) -> Instant {
        match (self.pending, self.last) {
            (true, Some(last)) => self.next.min(last + self.gap),
            (true, None) => self.next,
            (false, _) => self.next,
        }
    }
}

#[cfg(test)]
mod pacer_tests {
    use super::*;

    #[test]
    fn a_reconnect_storm_publishes_a_bounded_number_of_snapshots() {
        let t0 = Instant::now();
        let mut pacer = PublishPacer::new(Duration::from_secs(1), t0);
        let mut published = 0;
        // A status change on every loop iteration, 10,000 iterations in one second.
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(100 * i);
            pacer.note_change();
            if pacer.due(now) {
                pacer.published(now);
                published += 1;
            }
        }
        assert!(published <= 11, "{published} snapshots in one second");
    }

    #[test]
    fn a_change_is_published_soon_and_never_left_behind() {
        let t0 = Instant::now();
        let mut pacer = PublishPacer::new(Duration::from_secs(1), t0);
        assert!(pacer.due(t0));
        pacer.published(t0);
        assert!(!pacer.due(t0 + Duration::from_millis(1)));
        pacer.note_change();
        // The change is published within the pacing gap, and the loop wakes for it.
        let deadline = pacer.next_deadline();
        assert!(
            deadline <= t0 + Duration::from_millis(150),
            "{:?}",
            deadline - t0
        );
        assert!(pacer.due(deadline));
        pacer.published(deadline);
        assert!(!pacer.due(deadline));
        assert_eq!(pacer.next_deadline(), deadline + Duration::from_secs(1));
    }
}
