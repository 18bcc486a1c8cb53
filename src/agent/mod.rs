//! The agent side of triage: a workspace per incident and the writer thread that does its
//! file I/O, the permission preflight that records what an agent may do on its cluster, the
//! executor that runs agents as child processes, and the circuit breaker that stops running
//! them on a cluster whose agents keep failing; what confines an agent (its environment, a
//! sandbox on the host, capped output) and the retention that keeps workspaces from filling
//! the disk.

pub mod breaker;
pub mod child;
pub mod confinement;
pub mod environment;
pub mod executor;
pub mod failure_line;
pub mod output;
pub mod permissions;
pub mod preflight;
pub mod retention;
pub mod workspace;
pub mod workspace_writer;
