//! S3 listing as a sans-IO state machine: [`Lister`] asks for index range scans
//! ([`RangeQuery`]) and turns the rows it is fed into a page of entries (items and common
//! prefixes). It never asks for more rows than the page needs, and it skips past a common
//! prefix by seeking to the prefix's successor instead of reading the keys under it, so a
//! page costs the same whatever the size of the bucket.

/// Where a range scan starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lower {
    /// `key >= k`.
    AtLeast(Vec<u8>),
    /// `key > k`.
    After(Vec<u8>),
    /// `(key, tie) > (k, t)`: rows ordered by a second column (upload ids).
    AfterTie(Vec<u8>, Vec<u8>),
}

/// One index range scan: rows with `lower < key < upper`, ordered, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangeQuery {
    pub(crate) lower: Lower,
    /// Exclusive upper bound on the key (`None`: unbounded).
    pub(crate) upper: Option<Vec<u8>>,
    pub(crate) limit: usize,
}

/// A row of a range scan: its key, its tie-break column (empty for objects), and the item.
#[derive(Debug)]
pub(crate) struct Row<T> {
    pub(crate) key: Vec<u8>,
    pub(crate) tie: Vec<u8>,
    pub(crate) item: T,
}

/// One entry of a page.
#[derive(Debug)]
pub(crate) enum Entry<T> {
    Item(T),
    Prefix(Vec<u8>),
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` if
/// there is none (empty prefix, or all `0xFF`).
pub(crate) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// The common prefix of `key` under `prefix` and `delimiter`, if the delimiter occurs after
/// the prefix.
pub(crate) fn common_prefix<'k>(
    key: &'k [u8],
    prefix: &[u8],
    delimiter: &[u8],
) -> Option<&'k [u8]> {
    if delimiter.is_empty() || !key.starts_with(prefix) {
        return None;
    }
    let rest = &key[prefix.len()..];
    rest.windows(delimiter.len())
        .position(|w| w == delimiter)
        .map(|i| &key[..prefix.len() + i + delimiter.len()])
}

/// Builds one page. Drive it with `while let Some(q) = lister.next_query() { lister.feed(rows(q)) }`.
#[derive(Debug)]
pub(crate) struct Lister<T> {
    prefix: Vec<u8>,
    delimiter: Vec<u8>,
    cursor: Option<(Vec<u8>, Option<Vec<u8>>)>,
    max: usize,
    lower: Lower,
    upper: Option<Vec<u8>>,
    entries: Vec<Entry<T>>,
    truncated: bool,
    done: bool,
    /// Rows per scan when a delimiter is set (adapts between [`MIN_BATCH`] and a page).
    batch: usize,
}

/// The smallest scan with a delimiter: a common prefix costs at most about this many rows
/// read and skipped, so a page of 1,000 entries reads a bounded number of rows whatever the
/// size of the bucket or of its "directories".
const MIN_BATCH: usize = 8;

impl<T> Lister<T> {
    /// A lister for entries under `prefix` sorting after the cursor `(key, tie)`: with
    /// `tie == None`, everything whose key is `<= key` is excluded; with `Some(t)`, rows of
    /// `key` itself whose tie sorts after `t` are included.
    pub(crate) fn new(
        prefix: &[u8],
        delimiter: Option<&[u8]>,
        cursor: Option<(Vec<u8>, Option<Vec<u8>>)>,
        max: usize,
    ) -> Self {
        let lower = match &cursor {
            Some((key, tie)) if key.as_slice() >= prefix => match tie {
                Some(t) => Lower::AfterTie(key.clone(), t.clone()),
                None => Lower::After(key.clone()),
            },
            _ => Lower::AtLeast(prefix.to_vec()),
        };
        Lister {
            prefix: prefix.to_vec(),
            delimiter: delimiter.unwrap_or_default().to_vec(),
            cursor,
            max: max.min(crate::MAX_PAGE),
            lower,
            upper: successor(prefix),
            entries: Vec::new(),
            truncated: false,
            done: max == 0,
            batch: 32,
        }
    }

    /// The next range scan to run, or `None` when the page is complete.
    pub(crate) fn next_query(&self) -> Option<RangeQuery> {
        if self.done {
            return None;
        }
        let wanted = self.max - self.entries.len() + 1;
        let limit = if self.delimiter.is_empty() {
            wanted
        } else {
            wanted.min(self.batch)
        };
        Some(RangeQuery {
            lower: self.lower.clone(),
            upper: self.upper.clone(),
            limit,
        })
    }

    fn after_cursor(&self, prefix_entry: &[u8]) -> bool {
        match &self.cursor {
            None => true,
            Some((key, _)) => prefix_entry > key.as_slice(),
        }
    }

    /// Feeds the rows of the query last returned by [`Lister::next_query`] (`limit` is that
    /// query's limit).
    pub(crate) fn feed(&mut self, rows: Vec<Row<T>>, limit: usize) {
        let exhausted = rows.len() < limit;
        let mut skip_below: Option<Vec<u8>> = None;
        let mut skipped = 0usize;
        for row in rows {
            if let Some(bound) = &skip_below {
                if row.key < *bound {
                    skipped += 1;
                    continue;
                }
                skip_below = None;
            }
            if self.entries.len() == self.max {
                self.truncated = true;
                self.done = true;
                return;
            }
            if let Some(cp) = common_prefix(&row.key, &self.prefix, &self.delimiter) {
                let cp = cp.to_vec();
                let next = successor(&cp);
                if self.after_cursor(&cp) {
                    self.entries.push(Entry::Prefix(cp));
                }
                match next {
                    Some(next) => {
                        self.lower = Lower::AtLeast(next.clone());
                        skip_below = Some(next);
                    }
                    None => {
                        self.done = true;
                        return;
                    }
                }
                continue;
            }
            self.lower = if row.tie.is_empty() {
                Lower::After(row.key.clone())
            } else {
                Lower::AfterTie(row.key.clone(), row.tie.clone())
            };
            self.entries.push(Entry::Item(row.item));
        }
        // Rows under a common prefix are read only to be skipped: read fewer at a time while
        // that happens, more while every row counts.
        self.batch = if skipped > 0 {
            (self.batch / 2).max(MIN_BATCH)
        } else {
            (self.batch * 2).min(crate::MAX_PAGE + 1)
        };
        if exhausted {
            self.done = true;
        }
    }

    /// The page: its entries and whether more follow.
    pub(crate) fn finish(self) -> (Vec<Entry<T>>, bool) {
        (self.entries, self.truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_increments_the_last_byte_below_ff() {
        assert_eq!(successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(successor(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b""), None);
        assert_eq!(successor(b"\xff"), None);
    }

    #[test]
    fn common_prefix_ends_at_the_first_delimiter_after_the_prefix() {
        assert_eq!(common_prefix(b"a/b/c", b"a/", b"/"), Some(&b"a/b/"[..]));
        assert_eq!(common_prefix(b"a/b", b"a/", b"/"), None);
        assert_eq!(common_prefix(b"x--y--z", b"", b"--"), Some(&b"x--"[..]));
        assert_eq!(common_prefix(b"a/b", b"a/", b""), None);
    }

    /// Runs a lister against a sorted in-memory index, counting the rows it reads.
    fn run(
        keys: &[&str],
        prefix: &str,
        delim: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> (Vec<String>, bool, usize) {
        let mut lister = Lister::new(
            prefix.as_bytes(),
            delim.map(str::as_bytes),
            after.map(|a| (a.as_bytes().to_vec(), None)),
            max,
        );
        let mut read = 0;
        while let Some(q) = lister.next_query() {
            let rows: Vec<Row<String>> = keys
                .iter()
                .map(|k| k.as_bytes())
                .filter(|k| match &q.lower {
                    Lower::AtLeast(l) => *k >= l.as_slice(),
                    Lower::After(l) | Lower::AfterTie(l, _) => *k > l.as_slice(),
                })
                .filter(|k| q.upper.as_ref().is_none_or(|u| *k < u.as_slice()))
                .take(q.limit)
                .map(|k| Row {
                    key: k.to_vec(),
                    tie: Vec::new(),
                    item: String::from_utf8_lossy(k).into_owned(),
                })
                .collect();
            read += rows.len();
            lister.feed(rows, q.limit);
        }
        let (entries, truncated) = lister.finish();
        let names = entries
            .into_iter()
            .map(|e| match e {
                Entry::Item(s) => s,
                Entry::Prefix(p) => format!("{}*", String::from_utf8_lossy(&p)),
            })
            .collect();
        (names, truncated, read)
    }

    #[test]
    fn a_common_prefix_is_skipped_by_seeking_not_by_reading_its_keys() {
        let mut keys: Vec<String> = (0..500).map(|i| format!("dir/{i:04}")).collect();
        keys.push("file".into());
        keys.sort();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (names, truncated, read) = run(&refs, "", Some("/"), None, 1000);
        assert_eq!(names, ["dir/*", "file"]);
        assert!(!truncated);
        assert!(read <= 40, "read {read} rows for a two-entry page");
        // Many large "directories": the rows read grow with the page, not the bucket.
        let keys: Vec<String> = (0..300)
            .flat_map(|d| (0..100).map(move |f| format!("d{d:03}/{f:03}")))
            .collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (names, truncated, read) = run(&refs, "", Some("/"), None, 100);
        assert_eq!(names.len(), 100);
        assert!(truncated);
        assert!(
            read <= 100 * 2 * MIN_BATCH,
            "read {read} rows for 100 common prefixes"
        );
    }

    #[test]
    fn pages_are_truncated_exactly_when_more_entries_follow() {
        let keys = ["a", "b", "c/1", "c/2", "d"];
        assert_eq!(
            run(&keys, "", Some("/"), None, 3),
            (vec!["a".into(), "b".into(), "c/*".into()], true, 5)
        );
        assert_eq!(run(&keys, "", Some("/"), Some("c/"), 3).0, ["d"]);
        assert_eq!(run(&keys, "", Some("/"), Some("c/1"), 3).0, ["d"]);
        assert!(!run(&keys, "", None, Some("c/2"), 1).1);
        assert_eq!(run(&keys, "c/", None, Some("a"), 0), (vec![], false, 0));
    }
}
