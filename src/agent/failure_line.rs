//! The agent CLI's own error line, for an agent's failure reason. `run-agent.sh` prints it
//! last when it can read its own output back (regular files); when the output came through
//! the daemon's relay (pipes), the relay's tails of both streams are searched here the same
//! way: claude prints its errors on stdout, the others on stderr; stack frames, bare
//! punctuation, `[object Object]` and the script's own lines are skipped; a line that names
//! an error wins over any other.

/// Longest failure line kept, in characters.
const MAX_CHARS: usize = 1000;
/// Words that make a line an error line.
const ERROR_WORDS: [&str; 14] = [
    "error",
    "fail",
    "denied",
    "refused",
    "invalid",
    "unauthori",
    "forbidden",
    "not found",
    "exceeded",
    "quota",
    "cannot",
    "could not",
    "unable",
    "exception",
];

/// The line for the failure reason: the last line of stderr, unless that is the script
/// saying the CLI failed without naming why (`run-agent: <cli> exited with status N`); then
/// `<cli>: <the CLI's own line>` when one is found in the tails.
pub fn failure_line(cli: &str, stdout_tail: &[u8], stderr_tail: &[u8]) -> Option<String> {
    let last_stderr = meaningful_lines(stderr_tail).last().cloned();
    let unexplained = format!("run-agent: {cli} exited with status ");
    if !last_stderr
        .as_deref()
        .is_some_and(|l| l.starts_with(&unexplained))
    {
        return last_stderr;
    }
    let prefix = format!("{cli}: ");
    let order = if cli == "claude" {
        [stdout_tail, stderr_tail]
    } else {
        [stderr_tail, stdout_tail]
    };
    let own_line = |line: &String| !line.starts_with("run-agent: ");
    let found = order
        .iter()
        .find_map(|tail| {
            meaningful_lines(tail)
                .into_iter()
                .filter(own_line)
                .rfind(|l| is_error(l))
        })
        .or_else(|| {
            order
                .iter()
                .find_map(|tail| meaningful_lines(tail).into_iter().rfind(own_line))
        });
    match found {
        Some(line) => Some(format!("{prefix}{line}")),
        None => last_stderr,
    }
}

fn is_error(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    ERROR_WORDS.iter().any(|w| lower.contains(w))
}

/// Lines worth naming: trimmed, terminal escapes and control characters removed, cut to
/// [`MAX_CHARS`]; no stack frames, bare punctuation or `[object Object]`.
fn meaningful_lines(tail: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(tail);
    text.lines()
        .map(|line| clean(line).trim().to_string())
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with("at ")
                && !line.contains("[object Object]")
                && !line.chars().all(|c| "[]{}(),;".contains(c))
        })
        .map(|line| line.chars().take(MAX_CHARS).collect())
        .collect()
}

/// Removes ANSI escape sequences (`ESC [ … letter`) and other control characters.
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for next in chars.by_ref() {
                    if next.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_error_on_stdout_is_the_reason() {
        let stdout =
            b"API Error: 400 {\"type\":\"error\",\"error\":{\"message\":\"model not found\"}}\n";
        let stderr = b"run-agent: claude exited with status 1\n";
        assert_eq!(
            failure_line("claude", stdout, stderr).unwrap(),
            "claude: API Error: 400 {\"type\":\"error\",\"error\":{\"message\":\"model not found\"}}"
        );
    }

    #[test]
    fn stderr_error_beats_later_stack_frames_and_noise() {
        let stderr = b"\x1b[31mError when talking to Gemini API: 401 Unauthorized\x1b[0m\n    at Foo (x.js:1:2)\n}\n[object Object]\nrun-agent: gemini exited with status 1\n";
        assert_eq!(
            failure_line("gemini", b"thinking...\n", stderr).unwrap(),
            "gemini: Error when talking to Gemini API: 401 Unauthorized"
        );
    }

    #[test]
    fn a_line_the_script_already_found_stands() {
        let stderr = b"noise\nrun-agent: codex exited with status 1\ncodex: stream error: 500\n";
        assert_eq!(
            failure_line("codex", b"", stderr).unwrap(),
            "codex: stream error: 500"
        );
    }

    #[test]
    fn without_an_error_word_the_last_own_line_is_named() {
        let stderr = b"the model went away\nrun-agent: codex exited with status 1\n";
        assert_eq!(
            failure_line("codex", b"", stderr).unwrap(),
            "codex: the model went away"
        );
    }

    #[test]
    fn nothing_of_the_cli_leaves_the_scripts_line() {
        let stderr = b"run-agent: claude exited with status 1\n";
        assert_eq!(
            failure_line("claude", b"", stderr).unwrap(),
            "run-agent: claude exited with status 1"
        );
        assert_eq!(failure_line("claude", b"", b""), None);
    }

    #[test]
    fn a_script_that_explains_itself_is_taken_at_its_word() {
        let stderr = b"error: something earlier\nstub-agent: failing as asked\n";
        assert_eq!(
            failure_line("claude", b"API Error: 500\n", stderr).unwrap(),
            "stub-agent: failing as asked"
        );
    }

    #[test]
    fn long_lines_are_cut() {
        let stderr = format!(
            "error {}\nrun-agent: codex exited with status 1\n",
            "x".repeat(5000)
        );
        let line = failure_line("codex", b"", stderr.as_bytes()).unwrap();
        assert_eq!(line.chars().count(), "codex: ".len() + MAX_CHARS);
    }
}
