//! "Did you mean" suggestions for misspelt keys.

/// Largest edit distance still offered as a suggestion.
const MAX_DISTANCE: usize = 2;

/// The allowed key closest to `unknown`, if it is at most two edits away.
pub(crate) fn did_you_mean<'a>(unknown: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .filter_map(|&candidate| {
            edit_distance(unknown, candidate, MAX_DISTANCE).map(|d| (d, candidate))
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters, or `None` when it exceeds `limit`
/// (checked up front by length, so a huge key costs nothing).
pub(crate) fn edit_distance(a: &str, b: &str, limit: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().take(b.len() + limit + 1).collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    let distance = previous[b.len()];
    (distance <= limit).then_some(distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_single_edits() {
        assert_eq!(edit_distance("endpoint", "endpoint", 2), Some(0));
        assert_eq!(edit_distance("endpont", "endpoint", 2), Some(1));
        assert_eq!(edit_distance("endpiont", "endpoint", 2), Some(2));
        assert_eq!(edit_distance("priority", "enabled", 2), None);
        assert_eq!(edit_distance("", "ab", 2), Some(2));
    }

    #[test]
    fn closest_key_within_two_edits_is_suggested() {
        let allowed = ["endpoint", "api_key", "api_key_file", "ca_file"];
        assert_eq!(did_you_mean("endpiont", &allowed), Some("endpoint"));
        assert_eq!(did_you_mean("apikey", &allowed), Some("api_key"));
        assert_eq!(did_you_mean("certificate", &allowed), None);
    }

    #[test]
    fn huge_keys_are_not_compared_in_full() {
        let huge = "k".repeat(1_000_000);
        assert_eq!(did_you_mean(&huge, &["key"]), None);
    }
}
