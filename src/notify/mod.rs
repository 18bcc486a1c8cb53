//! Slack notifications for finished triage runs: what the agent's report says, the
//! message that carries it, and what to do with the webhook's answer. Sending the request
//! is the event loop's job; nothing here does I/O.

pub mod report;
pub mod sender;
pub mod slack;
