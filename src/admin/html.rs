//! Text into HTML: every character that could open a tag, an entity or leave an attribute
//! is escaped, so nothing a report, a fault or a server wrote can become markup.

use std::fmt::{self, Write};

/// `text`, escaped for an element's content or a quoted attribute value.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut clean_from = 0;
        for (at, c) in self.0.char_indices() {
            let entity = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                // NUL and other C0 controls are not allowed in HTML text; shown as U+FFFD.
                c if c.is_control() && !matches!(c, '\n' | '\t') => "\u{fffd}",
                _ => continue,
            };
            f.write_str(&self.0[clean_from..at])?;
            f.write_str(entity)?;
            clean_from = at + c.len_utf8();
        }
        f.write_str(&self.0[clean_from..])
    }
}

/// Appends `text` escaped to `out`.
pub fn push_escaped(out: &mut String, text: &str) {
    let _ = write!(out, "{}", Escaped(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_quotes_and_controls_are_escaped() {
        assert_eq!(
            Escaped("<img src=x onerror=\"a('b')\">&amp;\u{0}\u{1b}").to_string(),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;amp;\u{fffd}\u{fffd}"
        );
        assert_eq!(Escaped("plain é\ntext").to_string(), "plain é\ntext");
    }
}
