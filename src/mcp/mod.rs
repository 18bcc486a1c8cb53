//! MCP over Streamable HTTP: JSON-RPC messages and the client session state machine.

pub mod fault_notification;
pub mod jsonrpc;
pub mod session;
