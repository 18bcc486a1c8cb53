//! What the daemon shows about itself.

pub mod board;
pub mod render;
pub mod server;
