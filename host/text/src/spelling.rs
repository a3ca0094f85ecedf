//! "Did you mean ...?" for misspelt keys, kinds and provider names: most
//! unknown names are typos of a known one, and naming it saves a trip to
//! the docs.

/// Edit distance counting insertions, deletions, substitutions and swaps of
/// adjacent characters (so `prot` is one edit from `port`).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word` (ignoring case, `-` versus `_`), if it
/// is close enough to be a plausible typo.
///
/// "Close enough" grows with the word: no edits for one or two characters
/// (anything would match), one for three to five, two beyond. A word that
/// is a truncation or extension of a candidate (`retry` for `retries`) also
/// counts. On a tie the earlier candidate wins, so list the likelier first.
///
/// ```
/// assert_eq!(soar_text::closest("regoins", &["regions", "count"]), Some("regions"));
/// assert_eq!(soar_text::closest("zone", &["regions", "count"]), None);
/// ```
pub fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let w = norm(word);
    let limit = match w.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    };
    let close = candidates
        .iter()
        .map(|c| (distance(&w, &norm(c)), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    // A truncated or extended word (`retry`, `environment`) is a typo too:
    // it shares all but at most the last character of the shorter one.
    close.or_else(|| {
        candidates.iter().copied().find(|c| {
            let c = norm(c);
            let shorter = c.chars().count().min(w.chars().count());
            let common = c.chars().zip(w.chars()).take_while(|(a, b)| a == b).count();
            common >= 3 && common + 1 >= shorter
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_edits() {
        assert_eq!(distance("port", "port"), 0);
        assert_eq!(distance("prot", "port"), 1);
        assert_eq!(distance("servce", "service"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn suggests_only_plausible_typos() {
        let keys = ["service", "port", "env", "secrets", "keep_releases"];
        assert_eq!(closest("prot", &keys), Some("port"));
        assert_eq!(closest("servise", &keys), Some("service"));
        assert_eq!(closest("keep-releases", &keys), Some("keep_releases"));
        assert_eq!(closest("Secret", &keys), Some("secrets"));
        assert_eq!(closest("region", &keys), None);
        assert_eq!(closest("environment", &["app", "env"]), Some("env"));
        assert_eq!(closest("retry", &["path", "retries"]), Some("retries"));
        assert_eq!(closest("ev", &keys), None);
    }
}
