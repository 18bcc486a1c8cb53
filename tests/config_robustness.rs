//! No input makes configuration loading panic: every truncation of a real file and
//! thousands of corrupted variants either load or come back as errors.

use std::path::Path;

use nightcrier::config::{parse_str, FlagOverrides};

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/nightcrier.example.toml");
    // Uncomment every setting so that each value's checks run too.
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.contains(" = ") && !rest.starts_with("Skip") => rest.to_string(),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse(text: &str) -> Result<(), usize> {
    parse_str(text, Path::new("fuzz.toml"), &[], &FlagOverrides::default())
        .map(|_| ())
        .map_err(|errors| {
            for error in &errors.0 {
                let shown = error.to_string();
                assert!(!shown.contains('\n'), "multi-line error: {shown:?}");
                assert!(shown.len() < 1000, "overlong error: {shown}");
            }
            errors.len()
        })
}

#[test]
fn every_truncation_of_a_full_file_is_handled() {
    let text = example();
    let mut refused = 0;
    for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
        if parse(&text[..end]).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0);
}

#[test]
fn corrupted_files_never_panic() {
    let original = example().into_bytes();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let replacements = b"=[]{}\"'.,#\n \\0x-1e9_:/@";
    for _ in 0..3000 {
        let mut bytes = original.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % bytes.len();
            bytes[at] = replacements[(next() as usize) % replacements.len()];
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
    }
}
