//! What the daemon shows about itself.

pub mod board;
