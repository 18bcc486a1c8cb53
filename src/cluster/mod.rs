//! Cluster connections: one MCP session per cluster, their backoff and their manager.

pub mod backoff;
pub mod connection;
pub mod manager;
pub mod status;
