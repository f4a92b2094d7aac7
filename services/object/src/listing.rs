//! Swift listings over ordered maps: `prefix`, `delimiter` (pseudo-folders), `marker`, `end_marker`,
//! `reverse`, `limit`, `path`. A page costs the entries it walks, not the size of the container: the walk
//! starts at the marker (or the prefix) and a pseudo-folder is skipped in one jump.

use std::ops::Bound;

use strata_projections::persistent::OrdMap;

/// Listing parameters as Swift takes them from the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<char>,
    pub marker: String,
    pub end_marker: String,
    pub limit: usize,
    pub reverse: bool,
}

impl ListParams {
    /// Swift's `path=p`: the entries directly under `p/` (same as prefix `p/` with delimiter `/`).
    pub fn with_path(mut self, path: &str) -> Self {
        let trimmed = path.trim_end_matches('/');
        self.prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        self.delimiter = Some('/');
        self
    }
}

/// One listing entry: a stored item, or a pseudo-folder (`subdir`) when a delimiter folds names together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a, T> {
    Item(&'a str, &'a T),
    Subdir(String),
}

/// The page of `items` the parameters select; `keep` hides items (e.g. deleted containers).
pub fn list<'a, T: Clone>(
    items: &'a OrdMap<String, T>,
    params: &ListParams,
    keep: impl Fn(&T) -> bool,
) -> Vec<Entry<'a, T>> {
    let mut out = Vec::new();
    if params.limit == 0 {
        return out;
    }
    // Bounds of the walk, in key order: forward walks go (marker, end_marker), reverse ones the other way.
    let (low, high) = if params.reverse {
        (&params.end_marker, &params.marker)
    } else {
        (&params.marker, &params.end_marker)
    };
    let mut lower: Bound<String> = if low.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(low.clone())
    };
    if !params.prefix.is_empty() {
        let from_prefix = Bound::Included(params.prefix.clone());
        lower = match lower {
            Bound::Excluded(m) if m >= params.prefix => Bound::Excluded(m),
            _ => from_prefix,
        };
    }
    let mut upper: Bound<String> = if high.is_empty() {
        Bound::Unbounded
    } else {
        Bound::Excluded(high.clone())
    };
    loop {
        if bounds_empty(&lower, &upper) {
            break;
        }
        let mut range = items.range::<_, String>((lower.clone(), upper.clone()));
        let next = if params.reverse {
            range.next_back()
        } else {
            range.next()
        };
        let Some((name, value)) = next else {
            break;
        };
        if !name.starts_with(&params.prefix) {
            // Past the prefix in walk order: nothing further can match.
            if params.reverse && name.as_str() > params.prefix.as_str() {
                upper = Bound::Excluded(name.clone());
                continue;
            }
            break;
        }
        let rest = &name[params.prefix.len()..];
        let folded = params
            .delimiter
            .and_then(|d| rest.find(d).map(|i| i + d.len_utf8()));
        match folded {
            Some(end) => {
                let subdir = format!("{}{}", params.prefix, &rest[..end]);
                // Skip every name under this pseudo-folder in one jump.
                if params.reverse {
                    upper = Bound::Excluded(subdir.clone());
                } else {
                    lower = Bound::Excluded(after_all_with_prefix(&subdir));
                }
                // The pseudo-folder a page starts after (the marker, or the end marker of a reverse walk)
                // was the last entry of the previous page: as in Swift, it is not listed again, or a client
                // paging with the last name as its marker would loop for ever.
                if subdir != *low {
                    out.push(Entry::Subdir(subdir));
                }
            }
            None => {
                if params.reverse {
                    upper = Bound::Excluded(name.clone());
                } else {
                    lower = Bound::Excluded(name.clone());
                }
                if keep(value) {
                    out.push(Entry::Item(name.as_str(), value));
                }
            }
        }
        if out.len() >= params.limit {
            break;
        }
    }
    out
}

/// A key greater than every key that starts with `prefix` (and smaller than the next prefix).
fn after_all_with_prefix(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

fn bounds_empty(lower: &Bound<String>, upper: &Bound<String>) -> bool {
    match (lower, upper) {
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u) | Bound::Included(u)) => {
            l > u || (l == u && !matches!((lower, upper), (Bound::Included(_), Bound::Included(_))))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(names: &[&str]) -> OrdMap<String, u32> {
        names.iter().map(|n| (n.to_string(), 1u32)).collect()
    }

    fn names(entries: &[Entry<'_, u32>]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Item(n, _) => n.to_string(),
                Entry::Subdir(s) => format!("{s}(dir)"),
            })
            .collect()
    }

    fn params() -> ListParams {
        ListParams {
            limit: 10_000,
            ..Default::default()
        }
    }

    const TREE: &[&str] = &["a", "b/1", "b/2", "b/c/3", "c", "d/1"];

    #[test]
    fn plain_marker_end_marker_limit() {
        let m = items(TREE);
        assert_eq!(names(&list(&m, &params(), |_| true)).len(), 6);
        let p = ListParams {
            marker: "b/1".into(),
            end_marker: "d".into(),
            limit: 2,
            ..params()
        };
        assert_eq!(names(&list(&m, &p, |_| true)), ["b/2", "b/c/3"]);
    }

    #[test]
    fn prefix_and_delimiter_fold_pseudo_folders() {
        let m = items(TREE);
        let p = ListParams {
            delimiter: Some('/'),
            ..params()
        };
        assert_eq!(
            names(&list(&m, &p, |_| true)),
            ["a", "b/(dir)", "c", "d/(dir)"]
        );
        let p = ListParams {
            prefix: "b/".into(),
            delimiter: Some('/'),
            ..params()
        };
        assert_eq!(names(&list(&m, &p, |_| true)), ["b/1", "b/2", "b/c/(dir)"]);
        assert_eq!(
            names(&list(&m, &params().with_path("b"), |_| true)),
            ["b/1", "b/2", "b/c/(dir)"]
        );
        let p = ListParams {
            prefix: "b".into(),
            ..params()
        };
        assert_eq!(names(&list(&m, &p, |_| true)), ["b/1", "b/2", "b/c/3"]);
    }

    #[test]
    fn reverse_swaps_the_markers() {
        let m = items(TREE);
        let p = ListParams {
            reverse: true,
            ..params()
        };
        assert_eq!(names(&list(&m, &p, |_| true))[0], "d/1");
        let p = ListParams {
            reverse: true,
            marker: "c".into(),
            end_marker: "a".into(),
            delimiter: Some('/'),
            ..params()
        };
        assert_eq!(names(&list(&m, &p, |_| true)), ["b/(dir)"]);
        let p = ListParams {
            reverse: true,
            prefix: "b/".into(),
            ..params()
        };
        assert_eq!(names(&list(&m, &p, |_| true)), ["b/c/3", "b/2", "b/1"]);
    }

    /// Pages of one entry, each asked with the previous page's last name as its marker (as swiftclient and
    /// openstacksdk page): every entry once, and the walk ends even when the last entry is a pseudo-folder.
    fn walk_pages(m: &OrdMap<String, u32>, base: &ListParams) -> Vec<String> {
        let mut marker = String::new();
        let mut seen = Vec::new();
        for _ in 0..100 {
            let p = ListParams {
                marker: marker.clone(),
                limit: 1,
                ..base.clone()
            };
            let page = names(&list(m, &p, |_| true));
            let Some(last) = page.last() else {
                return seen;
            };
            marker = last.trim_end_matches("(dir)").to_string();
            seen.extend(page);
        }
        panic!("the listing pages for ever: {seen:?}");
    }

    #[test]
    fn a_pseudo_folder_given_as_the_marker_is_not_listed_again() {
        let m = items(&["a", "b/1", "c", "d2/x", "d2/y"]);
        let slash = ListParams {
            delimiter: Some('/'),
            ..params()
        };
        assert_eq!(walk_pages(&m, &slash), ["a", "b/(dir)", "c", "d2/(dir)"]);
        let reverse = ListParams {
            reverse: true,
            ..slash.clone()
        };
        assert_eq!(walk_pages(&m, &reverse), ["d2/(dir)", "c", "b/(dir)", "a"]);
        // Within a prefix, and with an end marker that is a folder (reverse walks start after it).
        let m = items(&["p/a", "p/q/1", "p/r/1", "z"]);
        let prefixed = ListParams {
            prefix: "p/".into(),
            ..slash.clone()
        };
        assert_eq!(walk_pages(&m, &prefixed), ["p/a", "p/q/(dir)", "p/r/(dir)"]);
        let p = ListParams {
            marker: "p/q/".into(),
            ..prefixed.clone()
        };
        assert_eq!(names(&list(&m, &p, |_| true)), ["p/r/(dir)"]);
        let p = ListParams {
            reverse: true,
            end_marker: "p/q/".into(),
            ..prefixed
        };
        assert_eq!(names(&list(&m, &p, |_| true)), ["p/r/(dir)"]);
    }

    #[test]
    fn hidden_items_are_skipped_and_pages_chain() {
        let m: OrdMap<String, u32> = (0..2500u32).map(|i| (format!("o{i:05}"), i)).collect();
        let mut marker = String::new();
        let mut seen = 0;
        loop {
            let p = ListParams {
                marker: marker.clone(),
                limit: 1000,
                ..params()
            };
            let page = list(&m, &p, |v| v % 2 == 0);
            let Some(Entry::Item(last, _)) = page.last() else {
                break;
            };
            seen += page.len();
            marker = last.to_string();
        }
        assert_eq!(seen, 1250);
    }
}
