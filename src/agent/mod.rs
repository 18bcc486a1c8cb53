//! The agent side of triage: a workspace per incident, the permission preflight that records
//! what an agent may do on its cluster, the executor that runs agents as child processes,
//! and the circuit breaker that stops running them on a cluster whose agents keep failing.

pub mod breaker;
pub mod confinement;
pub mod environment;
pub mod executor;
pub mod output;
pub mod permissions;
pub mod preflight;
pub mod workspace;
