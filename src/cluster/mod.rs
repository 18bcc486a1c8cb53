//! Cluster connections: one MCP session per cluster, their backoff and their manager.

pub mod admission;
pub mod backoff;
pub mod connection;
pub mod manager;
pub mod status;
