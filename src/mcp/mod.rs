//! MCP over Streamable HTTP: JSON-RPC messages and the client session state machine.

pub mod jsonrpc;
pub mod session;
