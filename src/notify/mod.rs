//! Slack notifications: what the agent's report says, the messages that carry it, and what
//! to do with Slack's answers. Webhook mode sends one message per finished run
//! (`sender`, `slack`); app mode keeps one thread per incident through the Web API
//! (`slack_app` and the sans-I/O parts it drives).

pub mod incident_message;
pub mod report;
pub mod sender;
pub mod slack;
pub mod slack_api;
pub mod slack_app;
pub mod slack_pacing;
pub mod slack_route;
pub mod slack_thread;
