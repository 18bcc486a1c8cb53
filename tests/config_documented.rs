//! The configuration documentation says what the binary accepts: every key in
//! config/nightcrier.example.toml (set or shown commented out) and in the README's
//! configuration tables is one the binary accepts, and every key it accepts is in both.
//! Each documented key is also given to the binary in a file, which must not call it
//! unknown.

use std::collections::BTreeSet;
use std::path::Path;

use nightcrier::config::{accepted_keys, parse_str, FlagOverrides};

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn accepted() -> BTreeSet<String> {
    accepted_keys().into_iter().collect()
}

/// Keys of the example file, dotted by the table they are in, commented-out ones included
/// (`# key = value`, under `[table]` or a commented-out `# [[table]]`); comment prose is
/// recognized by needing ` = ` after one bare word.
fn example_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut table = String::new();
    for line in text.lines() {
        let line = line.trim();
        let uncommented = line.strip_prefix('#').map_or(line, str::trim_start);
        if let Some(header) = uncommented
            .strip_prefix("[[")
            .and_then(|l| l.strip_suffix("]]"))
        {
            table = header.to_string();
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = header.to_string();
            continue;
        }
        let code = line.strip_prefix('#').map_or(line, str::trim_start);
        let Some((key, _)) = code.split_once(" = ") else {
            continue;
        };
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if bare {
            keys.insert(if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            });
        }
    }
    keys
}

/// Keys in the first column of the README's configuration tables: the single-cluster and
/// `[[clusters]]` tables under "Single cluster or many" (the second one's keys are a
/// cluster's, `clusters.…`), and the table under "Global settings". A cell may name several
/// keys (`` `slack.webhook_url` / `webhook_url_file` ``): a bare one takes the section of
/// the one before it.
fn readme_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut heading = "";
    let mut tables_in_section = 0;
    let mut in_table = false;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("### ") {
            heading = title;
            tables_in_section = 0;
            continue;
        }
        if !line.starts_with("| `") {
            in_table = in_table && line.starts_with('|');
            continue;
        }
        if !in_table {
            in_table = true;
            tables_in_section += 1;
        }
        let prefix = match (heading, tables_in_section) {
            ("Single cluster or many", 1) => "",
            ("Single cluster or many", _) => "clusters.",
            ("Global settings", _) => "",
            _ => continue,
        };
        let cell = line.split('|').nth(1).unwrap_or("");
        let mut section = String::new();
        for part in cell.split('/') {
            let name = part.trim().trim_matches('`');
            let full = match name.rsplit_once('.') {
                Some((before, _)) => {
                    section = format!("{before}.");
                    name.to_string()
                }
                None => format!("{section}{name}"),
            };
            keys.insert(format!("{prefix}{full}"));
        }
    }
    keys
}

/// A file setting `key` (dotted) to a value of the wrong type: the binary must complain
/// about its value, never call it an unknown key.
fn assert_binary_knows(key: &str) {
    let parts: Vec<&str> = key.split('.').collect();
    let text = match parts.as_slice() {
        ["clusters", rest @ ..] => {
            let base = "[[clusters]]\nname = \"a\"\n";
            match rest {
                [table, key] => format!("{base}[clusters.{table}]\n{key} = {{}}\n"),
                [key] => format!("{base}{key} = {{}}\n"),
                _ => panic!("{key}"),
            }
        }
        [table, key] => format!("[{table}]\n{key} = {{}}\n"),
        [table, list, key] => format!("[[{table}.{list}]]\n{key} = {{}}\n"),
        [key] => format!("{key} = {{}}\n"),
        _ => panic!("{key}"),
    };
    let errors = match parse_str(&text, Path::new("t.toml"), &[], &FlagOverrides::default()) {
        Ok(_) => return,
        Err(errors) => errors.to_string(),
    };
    assert!(
        !errors.contains("unknown key"),
        "{key} is documented but the binary calls it unknown:\n{errors}"
    );
}

fn assert_same(documented: &BTreeSet<String>, what: &str) {
    let accepted = accepted();
    let unknown: Vec<_> = documented.difference(&accepted).collect();
    assert!(
        unknown.is_empty(),
        "{what} names keys the binary does not accept: {unknown:?}"
    );
    let missing: Vec<_> = accepted.difference(documented).collect();
    assert!(
        missing.is_empty(),
        "{what} leaves out keys the binary accepts: {missing:?}"
    );
    for key in documented {
        assert_binary_knows(key);
    }
}

#[test]
fn the_example_file_names_every_key_the_binary_accepts_and_no_other() {
    let keys = example_keys(&read("config/nightcrier.example.toml"));
    assert!(keys.contains("clusters.mcp.endpoint") && keys.contains("log_level"));
    assert_same(&keys, "config/nightcrier.example.toml");
}

#[test]
fn the_readme_tables_name_every_key_the_binary_accepts_and_no_other() {
    let keys = readme_keys(&read("README.md"));
    assert!(keys.contains("clusters.mcp.endpoint") && keys.contains("slack.webhook_url_env"));
    assert_same(&keys, "README.md's configuration tables");
}

#[test]
fn the_key_list_is_what_the_binary_reads() {
    let accepted = accepted();
    // Nested tables are not keys of their own; their keys are.
    for table in ["clusters", "clusters.mcp", "agent", "admin"] {
        assert!(!accepted.contains(table), "{table}");
    }
    for key in &accepted {
        assert_binary_knows(key);
    }
    // And a key it does not read is refused as unknown, so the check above can fail.
    let errors = parse_str(
        "[queue]\noverflow = 1\n",
        Path::new("t.toml"),
        &[],
        &FlagOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(errors.contains("unknown key"), "{errors}");
}
