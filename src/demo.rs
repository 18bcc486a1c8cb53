//! `nightcrier demo`.

/// Not part of this build yet.
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("demo: not available in this build".to_string())
}
