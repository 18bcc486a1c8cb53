//! The one thread that owns everything that moves: a `mio::Poll` over every cluster's
//! sockets, the DNS resolver's and the commands' waker, and the signals; the timer wheel's
//! next deadline is the poll timeout, so an idle daemon sleeps until something is due.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::cluster::connection::{ConnectionContext, ConnectionSettings, TimerKey};
use crate::cluster::manager::Manager;
use crate::config::ClusterConfig;
use crate::events::EventSink;
use crate::health::board::{HealthBoard, Published};
use crate::net::dns::Resolver;
use crate::net::tls::TlsConfigs;
use crate::timer::TimerWheel;

const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const TIMER_TICK: Duration = Duration::from_millis(5);
const TIMER_SLOTS: usize = 4096;
const EVENTS_CAPACITY: usize = 1024;

/// Asks the loop to do something from another thread.
#[derive(Debug)]
pub enum Command {
    Shutdown,
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

pub struct LoopOptions {
    pub settings: ConnectionSettings,
    /// How long sessions get to close (DELETE) on shutdown.
    pub shutdown_timeout: Duration,
    /// How often the health snapshot is refreshed even without status changes.
    pub publish_interval: Duration,
    /// Take SIGTERM/SIGINT/SIGHUP/SIGCHLD into the poll (the daemon does; tests don't).
    pub handle_signals: bool,
}

pub struct EventLoop<S: EventSink> {
    poll: Poll,
    waker: Arc<Waker>,
    commands: Receiver<Command>,
    command_sender: Sender<Command>,
    signals: Option<Signals>,
    resolver: Resolver,
    timers: TimerWheel<TimerKey>,
    tls: TlsConfigs,
    inbound: Vec<u8>,
    manager: Manager,
    sink: S,
    board: HealthBoard,
    options: LoopOptions,
}

impl<S: EventSink> EventLoop<S> {
    pub fn new(options: LoopOptions, sink: S, board: HealthBoard) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (command_sender, commands) = mpsc::channel();
        let signals = if options.handle_signals {
            let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD])?;
            poll.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)?;
            Some(signals)
        } else {
            None
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
            inbound: Vec::with_capacity(16 * 1024),
            manager: Manager::new(),
            sink,
            board,
            options,
        })
    }

    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            commands: self.command_sender.clone(),
            waker: self.waker.clone(),
        }
    }

    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Connects every enabled cluster and runs until shutdown, then closes the sessions.
    pub fn run(&mut self, clusters: &[Arc<ClusterConfig>]) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut fired = Vec::new();
        let mut now = Instant::now();
        let mut stopping_since: Option<Instant> = None;
        let mut next_publish = now;
        let mut changed = false;

        {
            let (manager, mut ctx) = self.parts(now);
            manager.start_all(&mut ctx, clusters);
        }

        loop {
            if changed || now >= next_publish {
                self.publish(now, stopping_since.is_some());
                next_publish = now + self.options.publish_interval;
                changed = false;
            }
            if let Some(since) = stopping_since {
                if self.manager.all_closed() || now >= since + self.options.shutdown_timeout {
                    let (manager, mut ctx) = self.parts(now);
                    manager.close_all(&mut ctx);
                    self.publish(now, true);
                    return Ok(());
                }
            }

            let mut deadline = next_publish;
            if let Some(timer) = self.timers.next_deadline() {
                deadline = deadline.min(timer);
            }
            if let Some(since) = stopping_since {
                deadline = deadline.min(since + self.options.shutdown_timeout);
            }
            let timeout = deadline.saturating_duration_since(Instant::now());
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            now = Instant::now();

            let mut woken = false;
            let mut stop = false;
            {
                let (manager, mut ctx) = self.parts(now);
                for event in events.iter() {
                    match event.token() {
                        WAKER => woken = true,
                        SIGNALS => {}
                        token => manager.on_ready(&mut ctx, token),
                    }
                }
                ctx.timers.expire(now, &mut fired);
                for timer in fired.drain(..) {
                    manager.on_timer(&mut ctx, timer);
                }
                changed |= ctx.changed;
            }
            if events.iter().any(|e| e.token() == SIGNALS) {
                stop |= self.on_signals();
            }
            if woken {
                let answers: Vec<_> = self.resolver.answers().collect();
                let (manager, mut ctx) = self.parts(now);
                for answer in answers {
                    manager.on_resolved(&mut ctx, answer);
                }
                changed |= ctx.changed;
                for command in self.commands.try_iter() {
                    match command {
                        Command::Shutdown => stop = true,
                    }
                }
            }
            if stop && stopping_since.is_none() {
                log::info!(
                    "shutting down: closing {} cluster sessions",
                    self.manager.len()
                );
                stopping_since = Some(now);
                let (manager, mut ctx) = self.parts(now);
                manager.begin_shutdown(&mut ctx);
                changed = true;
            }
        }
    }

    /// Returns true when a signal asks the daemon to stop.
    fn on_signals(&mut self) -> bool {
        let Some(signals) = self.signals.as_mut() else {
            return false;
        };
        let mut stop = false;
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
                SIGHUP => log::warn!("SIGHUP received: configuration reload is not supported yet"),
                SIGCHLD => log::debug!("SIGCHLD received"),
                _ => {}
            }
        }
        stop
    }

    fn publish(&self, now: Instant, stopping: bool) {
        self.board.publish(Published {
            clusters: self.manager.snapshots(now),
            summary: self.manager.summary(),
            pipeline: Default::default(),
            at: now,
            wall: SystemTime::now(),
            sequence: 0,
            stopping,
        });
    }

    /// Splits the loop into the manager and the context its connections borrow.
    fn parts(&mut self, now: Instant) -> (&mut Manager, ConnectionContext<'_>) {
        let ctx = ConnectionContext {
            now,
            registry: self.poll.registry(),
            timers: &mut self.timers,
            resolver: &self.resolver,
            tls: &mut self.tls,
            inbound: &mut self.inbound,
            sink: &mut self.sink,
            settings: &self.options.settings,
            changed: false,
        };
        (&mut self.manager, ctx)
    }
}
