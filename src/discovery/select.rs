//! Which servers discovery serves: those carrying a Nova tag, those with
//! a metadata key set to a value, those whose name matches a pattern; a
//! server must pass every selector configured. The tag is also handed to
//! Nova as a listing filter, so a large project is not listed whole; it
//! is checked here again, so a cloud that ignored the filter never gets
//! every server served.

use std::collections::BTreeMap;

use crate::backend::nova::client::ListedServer;

/// The selectors of `[discovery]` (`tag`, `metadata`, `name`); at least
/// one is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// A Nova server tag the server must carry.
    pub tag: Option<String>,
    /// Metadata keys the server must have, each with this value.
    pub metadata: BTreeMap<String, String>,
    /// A pattern the server's name must match.
    pub name: Option<NamePattern>,
}

impl Selector {
    /// Whether `server` is one to serve.
    pub fn matches(&self, server: &ListedServer) -> bool {
        self.tag
            .as_ref()
            .is_none_or(|t| server.tags.iter().any(|x| x == t))
            && self
                .metadata
                .iter()
                .all(|(k, v)| server.metadata.get(k) == Some(v))
            && self.name.as_ref().is_none_or(|p| p.matches(&server.name))
    }

    /// `tag baremetal, metadata role=bm, name bm-*`, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.tag {
            parts.push(format!("tag {t}"));
        }
        for (k, v) in &self.metadata {
            parts.push(format!("metadata {k}={v}"));
        }
        if let Some(p) = &self.name {
            parts.push(format!("name {}", p.0));
        }
        parts.join(", ")
    }
}

/// A shell-style name pattern: `*` is any run of characters, `?` any one
/// character, everything else itself (case matters, as in Nova).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern(pub String);

impl NamePattern {
    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let p: Vec<char> = self.0.chars().collect();
        let n: Vec<char> = name.chars().collect();
        // Iterative wildcard matching: on a mismatch, the last `*` takes
        // one more character; linear in practice, never exponential.
        let (mut i, mut j) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while j < n.len() {
            match p.get(i) {
                Some('*') => {
                    star = Some((i, j));
                    i += 1;
                }
                Some(c) if *c == '?' || *c == n[j] => {
                    i += 1;
                    j += 1;
                }
                _ => match star {
                    Some((si, sj)) => {
                        i = si + 1;
                        j = sj + 1;
                        star = Some((si, sj + 1));
                    }
                    None => return false,
                },
            }
        }
        p[i.min(p.len())..].iter().all(|c| *c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::nova::states::Status;

    fn server(name: &str, tags: &[&str], metadata: &[(&str, &str)]) -> ListedServer {
        ListedServer {
            id: "u".into(),
            name: name.into(),
            status: Status::Active,
            created: String::new(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn patterns_match_whole_names() {
        let p = |s: &str| NamePattern(s.into());
        assert!(p("bm-*").matches("bm-0"));
        assert!(p("bm-*").matches("bm-"));
        assert!(!p("bm-*").matches("xbm-0"));
        assert!(p("*-node-?").matches("rack1-node-7"));
        assert!(!p("*-node-?").matches("rack1-node-17"));
        assert!(p("a*b*c").matches("aXXbYYbc"));
        assert!(!p("a*b*c").matches("aXXbYYbd"));
        assert!(p("exact").matches("exact"));
        assert!(!p("exact").matches("Exact"));
        assert!(p("*").matches(""));
    }

    #[test]
    fn every_selector_set_must_pass() {
        let s = Selector {
            tag: Some("baremetal".into()),
            metadata: BTreeMap::from([("role".to_string(), "bm".to_string())]),
            name: Some(NamePattern("bm-*".into())),
        };
        assert!(s.matches(&server("bm-1", &["baremetal"], &[("role", "bm")])));
        assert!(!s.matches(&server("bm-1", &[], &[("role", "bm")])));
        assert!(!s.matches(&server("bm-1", &["baremetal"], &[("role", "x")])));
        assert!(!s.matches(&server("vm-1", &["baremetal"], &[("role", "bm")])));
        assert_eq!(s.describe(), "tag baremetal, metadata role=bm, name bm-*");
        let by_tag = Selector {
            tag: Some("baremetal".into()),
            metadata: BTreeMap::new(),
            name: None,
        };
        assert!(by_tag.matches(&server("anything", &["x", "baremetal"], &[])));
    }
}
