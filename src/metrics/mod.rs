//! Counters of the triage pipeline, kept by the loop and published with its health snapshot.

pub mod counters;
pub mod render;
