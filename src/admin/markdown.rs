//! An agent's report (Markdown) as HTML with `pulldown-cmark`, made safe to show: raw HTML
//! in the report is shown as text, links keep only `http`, `https` and `mailto` targets
//! (and in-page `#` anchors), and images become their alt text. A report is written by a
//! model that read text from the cluster, so it is treated as hostile.

use pulldown_cmark::{html, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// `markdown` rendered to HTML that carries no markup of the report's own.
pub fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    // A link or image whose target is refused is rendered as emphasis: its text stays.
    let mut refused = Vec::new();
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            // An email autolink's target is the bare address; the renderer adds `mailto:`.
            let safe = if link_type == LinkType::Email {
                !dest_url.contains(':')
            } else {
                is_safe_target(&dest_url)
            };
            refused.push(!safe);
            if safe {
                Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                })
            } else {
                Event::Start(Tag::Emphasis)
            }
        }
        Event::End(TagEnd::Link) => {
            if refused.pop().unwrap_or(false) {
                Event::End(TagEnd::Emphasis)
            } else {
                Event::End(TagEnd::Link)
            }
        }
        Event::Start(Tag::Image { .. }) => Event::Start(Tag::Emphasis),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Emphasis),
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// `http:`, `https:`, `mailto:` and `#anchor` targets; anything else (`javascript:`,
/// `data:`, relative paths into this listener) is refused.
fn is_safe_target(url: &CowStr<'_>) -> bool {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    url.starts_with('#')
        || lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("mailto:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_lists_code_and_tables_render() {
        let html = render("## Summary\n\n- one\n- `two`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert!(html.contains("<h2>Summary</h2>"), "{html}");
        assert!(html.contains("<li><code>two</code></li>"), "{html}");
        assert!(html.contains("<td>1</td>"), "{html}");
    }

    #[test]
    fn raw_html_in_a_report_is_shown_as_text() {
        let html = render(
            "<script>alert(1)</script>\n\nsee <img src=x onerror=\"alert(2)\"> and <b onclick=x>b</b>\n",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b "), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        // Quotes need no escape in text: without `<` nothing can open a tag.
        assert!(
            html.contains("&lt;img src=x onerror=\"alert(2)\"&gt;"),
            "{html}"
        );
    }

    #[test]
    fn only_web_and_mail_links_stay_links_and_images_become_text() {
        let html = render(
            "[ok](https://example.com/a?b=\"c\") [bad](javascript:alert(1)) [data](data:text/html,x) \
             [rel](/incidents/../x) [top](#summary) ![pixel](https://tracker.example/p.png)\n",
        );
        assert!(
            html.contains("<a href=\"https://example.com/a?b=%22c%22\">ok</a>"),
            "{html}"
        );
        assert!(html.contains("<a href=\"#summary\">top</a>"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("data:"), "{html}");
        assert!(!html.contains("href=\"/incidents"), "{html}");
        assert!(
            html.contains("<em>bad</em>") && html.contains("<em>pixel</em>"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn autolinks_of_other_schemes_are_refused() {
        let html = render("<javascript:alert(1)> <https://ok.example> <ops@example.com>\n");
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(html.contains("href=\"https://ok.example\""), "{html}");
        assert!(html.contains("href=\"mailto:ops@example.com\""), "{html}");
    }
}
