//! Node names for discovered servers: the server's name made into a name
//! every consumer takes (Ironic's logical names, MAAS hostnames, the
//! state directory's file names, Redfish system IDs in URLs): lower case
//! letters, digits, `-`, `_` and `.`, at most 63 characters.
//!
//! Two servers can make one name (Nova allows duplicate names, and
//! `Web 1` and `web-1` both become `web-1`), and a name can be taken by a
//! node of the configuration file. Then every server involved is named
//! with the start of its UUID appended (`web-1-6f1c2a8e`), so the outcome
//! depends only on the servers there are, never on the order Nova lists
//! them, and each such renaming is reported.

use std::collections::{BTreeMap, BTreeSet};

/// Longest node name made (a DNS label's length).
const MAX_LEN: usize = 63;

/// `name` as a node name: lower case, runs of other characters as one
/// `-`, without `-` or `.` at either end; `server` if nothing is left.
pub fn sanitise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
            out.push(c);
            dash = c == '-';
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    let trimmed = trim(&out);
    let mut name = trimmed.to_string();
    if name.len() > MAX_LEN {
        name.truncate(MAX_LEN);
        name = trim(&name).to_string();
    }
    if name.is_empty() {
        "server".into()
    } else {
        name
    }
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c| c == '-' || c == '.')
}

/// A server named otherwise than its sanitised name, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renamed {
    /// The server's UUID.
    pub server: String,
    /// The node name it gets.
    pub node: String,
    /// Why: who else wanted the name.
    pub because: String,
}

/// Names `servers` (UUID, server name), avoiding `taken` (the
/// configuration file's node names): the UUID to node name, and the
/// servers renamed.
pub fn assign<'a>(
    servers: impl IntoIterator<Item = (&'a str, &'a str)>,
    taken: &BTreeSet<String>,
) -> (BTreeMap<String, String>, Vec<Renamed>) {
    let mut wanted: BTreeMap<String, Vec<(&str, &str)>> = BTreeMap::new();
    for (id, name) in servers {
        wanted.entry(sanitise(name)).or_default().push((id, name));
    }
    for claimants in wanted.values_mut() {
        claimants.sort_unstable();
    }
    let mut names = BTreeMap::new();
    let mut renamed = Vec::new();
    // Unique names first, so a suffixed name never takes one of them.
    let mut used: BTreeSet<String> = taken.clone();
    for (base, claimants) in &wanted {
        if let [(id, _)] = claimants.as_slice()
            && !taken.contains(base)
        {
            names.insert(id.to_string(), base.clone());
            used.insert(base.clone());
        }
    }
    for (base, claimants) in &wanted {
        if claimants.len() == 1 && !taken.contains(base) {
            continue;
        }
        let because = if taken.contains(base) {
            format!("node name {base} is taken by the configuration file")
        } else {
            let who: Vec<String> = claimants
                .iter()
                .map(|(id, name)| format!("{name} ({id})"))
                .collect();
            format!("servers {} all make node name {base}", who.join(", "))
        };
        for (id, _) in claimants {
            let node = suffixed(base, id, &used);
            used.insert(node.clone());
            names.insert(id.to_string(), node.clone());
            renamed.push(Renamed {
                server: id.to_string(),
                node,
                because: because.clone(),
            });
        }
    }
    (names, renamed)
}

/// `base-` and the start of the UUID (its first eight letters and
/// digits), longer if that is taken too.
fn suffixed(base: &str, id: &str, used: &BTreeSet<String>) -> String {
    let digits: String = sanitise(id).chars().filter(|c| *c != '-').collect();
    let room = MAX_LEN.saturating_sub(digits.len().min(8) + 1);
    let stem = trim(&base[..base.len().min(room)]).to_string();
    for len in 8..=digits.len().max(8) {
        let tail = &digits[..len.min(digits.len())];
        let candidate = format!("{stem}-{tail}");
        if !used.contains(&candidate) {
            return candidate;
        }
    }
    // Two servers with one UUID cannot be; the name still must differ.
    let mut n = 2;
    loop {
        let candidate = format!("{stem}-{digits}-{n}");
        if !used.contains(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_become_node_names() {
        assert_eq!(sanitise("Web 01"), "web-01");
        assert_eq!(sanitise("rack1/node_7.lab"), "rack1-node_7.lab");
        assert_eq!(sanitise("  --a b--  "), "a-b");
        assert_eq!(sanitise("ÜBER!!server"), "ber-server");
        assert_eq!(sanitise("***"), "server");
        assert_eq!(sanitise(&"x".repeat(80)).len(), 63);
        assert_eq!(sanitise(".hidden."), "hidden");
    }

    #[test]
    fn collisions_rename_every_claimant_whatever_the_order() {
        let servers = [
            ("6f1c2a8e-7d3b-4a51-9c0e-2b7d1f4a8c90", "Web 1"),
            ("0a9e1111-0000-4000-8000-000000000000", "web-1"),
            ("1b2c3d4e-0000-4000-8000-000000000000", "db"),
            ("2c3d4e5f-0000-4000-8000-000000000000", "infra"),
        ];
        let taken = BTreeSet::from(["infra".to_string()]);
        let (names, renamed) = assign(servers, &taken);
        assert_eq!(names[servers[0].0], "web-1-6f1c2a8e");
        assert_eq!(names[servers[1].0], "web-1-0a9e1111");
        assert_eq!(names[servers[2].0], "db");
        assert_eq!(names[servers[3].0], "infra-2c3d4e5f");
        assert_eq!(renamed.len(), 3);
        assert!(
            renamed[0]
                .because
                .contains("taken by the configuration file")
        );
        assert!(renamed[1].because.contains("all make node name web-1"));
        let mut reversed = servers;
        reversed.reverse();
        assert_eq!(assign(reversed, &taken).0, names);
    }
}
