//! Threads that take blocking jobs (name lookups, preflight checks) off the loop from one
//! shared queue. They start as jobs come, not before: none until the first job, one more
//! with each job while fewer than the pool's size run, so a daemon that never resolves a
//! name or checks a kubeconfig keeps no idle threads (and none of their stacks) for it.

use std::cell::Cell;
use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

/// What each thread runs: takes jobs from the queue until it closes.
pub type Serve<J> = Arc<dyn Fn(&Mutex<Receiver<J>>) + Send + Sync>;

pub struct WorkerPool<J: Send + 'static> {
    jobs: Option<Sender<J>>,
    queue: Arc<Mutex<Receiver<J>>>,
    serve: Serve<J>,
    name: &'static str,
    stack_size: Option<usize>,
    size: usize,
    started: Cell<usize>,
}

impl<J: Send + 'static> WorkerPool<J> {
    /// A pool of at most `size` threads (at least one) named `name`, each running `serve`.
    pub fn new(
        name: &'static str,
        size: usize,
        stack_size: Option<usize>,
        serve: Serve<J>,
    ) -> WorkerPool<J> {
        let (jobs, queue) = mpsc::channel();
        WorkerPool {
            jobs: Some(jobs),
            queue: Arc::new(Mutex::new(queue)),
            serve,
            name,
            stack_size,
            size: size.max(1),
            started: Cell::new(0),
        }
    }

    /// Queues `job`, starting a thread first while fewer than the pool's size run. An
    /// error only when no thread runs to take it (none could be started, or the pool
    /// was closed).
    pub fn submit(&self, job: J) -> io::Result<()> {
        let started = self.started.get();
        if started < self.size {
            match self.spawn() {
                Ok(()) => self.started.set(started + 1),
                Err(e) if started == 0 => return Err(e),
                Err(e) => log::warn!("{}: {started} threads, no more: {e}", self.name),
            }
        }
        match self.jobs.as_ref().map(|jobs| jobs.send(job)) {
            Some(Ok(())) => Ok(()),
            _ => Err(io::Error::other(format!(
                "{} threads have stopped",
                self.name
            ))),
        }
    }

    /// Threads started so far.
    pub fn threads(&self) -> usize {
        self.started.get()
    }

    fn spawn(&self) -> io::Result<()> {
        let queue = Arc::clone(&self.queue);
        let serve = Arc::clone(&self.serve);
        let mut builder = thread::Builder::new().name(self.name.into());
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        builder.spawn(move || serve(&queue)).map(drop)
    }
}

impl<J: Send + 'static> Drop for WorkerPool<J> {
    /// Closing the queue ends each thread after its current job; nothing waits for it.
    fn drop(&mut self) {
        self.jobs.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn threads_start_with_jobs_up_to_the_size_and_every_job_is_taken() {
        let (done_tx, done_rx) = mpsc::channel::<u32>();
        let done_tx = Mutex::new(done_tx);
        let pool = WorkerPool::new(
            "pool-test",
            3,
            None,
            Arc::new(move |queue: &Mutex<Receiver<u32>>| loop {
                let job = match queue.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                if let Ok(tx) = done_tx.lock() {
                    let _ = tx.send(job);
                }
            }),
        );
        assert_eq!(pool.threads(), 0, "no job, no thread");
        for job in 0..10 {
            pool.submit(job).unwrap();
            assert_eq!(pool.threads(), (job as usize + 1).min(3));
        }
        let mut got: Vec<u32> = (0..10)
            .map(|_| done_rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }
}
