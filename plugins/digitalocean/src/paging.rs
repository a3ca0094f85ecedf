//! Deciding whether to follow a list's `links.pages.next`, separate from the
//! HTTP so the rules are plain to read.
//!
//! The API's paging is trusted only as far as it makes progress: a plan once
//! sent 7,666 identical `GET /v2/sizes?page=2` because the answer's next link
//! named the page just read (DigitalOcean allows 5,000 requests an hour, so
//! such a loop spends the account's budget for every other tool too). A next
//! link is followed only when it advances — its page number grows and its URL
//! has not been read — and never past the `meta.total` the API reports, or
//! when a page came back empty. Anything else stops the list with an error
//! that names it, rather than guessing which items were meant.

use std::collections::BTreeSet;

/// Pages of one list without `meta.total` are capped here: 1,000 pages of
/// 200 is 200,000 items, far more than any account's droplets, keys,
/// regions or sizes.
const MAX_PAGES_WITHOUT_TOTAL: u32 = 1_000;

/// What the next step of reading a list is.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Read this URL next.
    Follow(String),
    /// The list is complete.
    Done,
}

/// The progress of reading one paginated list.
pub struct Pager {
    /// What the user sees the list called, e.g. `sizes (GET /v2/sizes?per_page=200)`.
    list: String,
    /// The URL read last (path and query, as sent).
    current: String,
    seen: BTreeSet<String>,
    items: u64,
    requests: u32,
    /// The first page's `meta.total`: the cap for the whole read, so an
    /// answer whose total keeps growing cannot stretch it.
    total: Option<u64>,
}

impl Pager {
    /// Starts a list whose first page is `url` (path and query).
    pub fn new(key: &str, first: &str, url: &str) -> Self {
        Self {
            list: format!("the {key} list (GET {first})"),
            current: url.to_string(),
            seen: BTreeSet::from([url.to_string()]),
            items: 0,
            requests: 1,
            total: None,
        }
    }

    /// After a page with `count` items, `total` (its `meta.total`) and
    /// `next` (its next link, re-rooted on the endpoint): what to do next,
    /// or why the API's paging cannot be trusted.
    pub fn after_page(
        &mut self,
        count: usize,
        total: Option<u64>,
        next: Option<String>,
    ) -> Result<Step, String> {
        self.items += count as u64;
        if self.requests == 1 {
            self.total = total;
        }
        let total = self.total;
        let Some(next) = next else {
            return Ok(Step::Done);
        };
        if total.is_some_and(|t| self.items >= t) {
            // Every item the API counts is read; a further link cannot add any.
            return Ok(Step::Done);
        }
        let here = page_number(&self.current).unwrap_or(1);
        let fault = if self.seen.contains(&next) {
            Some(format!(
                "the next link of page {here} names a page already read ({next})"
            ))
        } else if page_number(&next).is_some_and(|n| n <= here) {
            Some(format!(
                "the next link of page {here} does not advance ({next})"
            ))
        } else if count == 0 {
            Some(format!(
                "page {here} came back empty yet links to a next page ({next})"
            ))
        } else if total.is_none() && self.requests >= MAX_PAGES_WITHOUT_TOTAL {
            Some(format!(
                "it announced more than {MAX_PAGES_WITHOUT_TOTAL} pages without a meta.total"
            ))
        } else {
            None
        };
        if let Some(fault) = fault {
            let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
            return Err(format!(
                "digitalocean provider: the API's paging of {} is inconsistent: {fault}; stopped after {} request(s) with {}{of} item(s) read. Nothing was changed. Retry in a minute; if it persists, the API (or a proxy in between) answers wrong page links — report it to DigitalOcean support with this message",
                self.list, self.requests, self.items
            ));
        }
        self.seen.insert(next.clone());
        self.current = next.clone();
        self.requests += 1;
        Ok(Step::Follow(next))
    }
}

/// The `page` query parameter of `url`, when it has one.
fn page_number(url: &str) -> Option<u64> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|v| v.parse().ok())
}
