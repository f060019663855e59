//! How `novabmc check` shows what it found: a table with one row per node
//! and the problems listed under it, or one JSON document (`--format
//! json`) with the same fields, for scripts.

use std::fmt::Write;

use super::{NodeRow, Report};

/// A column: its header, and how a row fills it.
type Column = (&'static str, fn(&NodeRow) -> String);

/// The columns of the table.
const COLUMNS: [Column; 10] = [
    ("NODE", |r| r.name.clone()),
    ("ORIGIN", |r| r.origin.clone()),
    ("BMC", |r| r.bmc.clone()),
    ("SERVER", |r| opt(&r.server_name)),
    ("UUID", |r| opt(&r.server_id)),
    ("STATUS", |r| opt(&r.status)),
    ("POWER", |r| opt(&r.power)),
    ("BOOT", |r| match (&r.boot_device, r.boot_persistent) {
        (Some(d), Some(true)) => format!("{d} (persistent)"),
        (Some(d), _) => d.clone(),
        (None, _) => "-".into(),
    }),
    ("NETBOOT", |r| match (&r.network_boot, &r.boot_mode) {
        (Some(n), Some(m)) => format!("{n}/{m}"),
        (Some(n), None) => n.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => "-".into(),
    }),
    ("PROBLEMS", |r| {
        if r.problems.is_empty() {
            "ok".into()
        } else {
            r.problems.len().to_string()
        }
    }),
];

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// The human form: the cloud, the table, then every problem and warning
/// by node.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "backend: {}", report.backend);
    if let Some(cloud) = &report.cloud {
        for s in &cloud.catalog {
            let _ = writeln!(
                out,
                "catalog: {} {} (microversions {})",
                s.service,
                s.endpoint,
                s.versions.as_deref().unwrap_or("none")
            );
        }
        for m in &cloud.microversions {
            let _ = writeln!(
                out,
                "microversion {}: {} ({})",
                m.version,
                if m.supported { "supported" } else { "MISSING" },
                m.used_for
            );
        }
        let _ = writeln!(out, "servers listed: {}", cloud.servers_listed);
        let _ = writeln!(out, "virtual media: {}", cloud.virtual_media);
    }
    if let Some(d) = &report.discovery {
        let _ = writeln!(
            out,
            "discovery: {}; addresses from {}; {} servers picked, {} nodes",
            d.selector, d.address, d.servers_matched, d.nodes
        );
    }
    for l in &report.redfish {
        let _ = writeln!(
            out,
            "redfish {} ({}): certificate {}{}",
            l.url,
            l.serves,
            l.certificate,
            l.fingerprint
                .as_ref()
                .map(|f| format!(", SHA-256 {f}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out);
    let cells: Vec<Vec<String>> = report
        .nodes
        .iter()
        .map(|r| COLUMNS.iter().map(|(_, f)| f(r)).collect())
        .collect();
    let widths: Vec<usize> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|c| c[i].len())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut String, values: &[&str]| {
        let mut l = String::new();
        for (v, w) in values.iter().zip(&widths) {
            let _ = write!(l, "{v:<w$}  ");
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    let headers: Vec<&str> = COLUMNS.iter().map(|(h, _)| *h).collect();
    line(&mut out, &headers);
    for c in &cells {
        let values: Vec<&str> = c.iter().map(String::as_str).collect();
        line(&mut out, &values);
    }
    let mut notes = String::new();
    for p in &report.problems {
        let _ = writeln!(notes, "problem: {p}");
    }
    for r in &report.nodes {
        for p in &r.problems {
            let _ = writeln!(notes, "problem: node {}: {p}", r.name);
        }
        for w in &r.warnings {
            let _ = writeln!(notes, "warning: node {}: {w}", r.name);
        }
    }
    for w in &report.warnings {
        let _ = writeln!(notes, "warning: {w}");
    }
    if !notes.is_empty() {
        let _ = writeln!(out);
        out.push_str(&notes);
    }
    out
}

/// The JSON form.
pub fn json(report: &Report) -> String {
    // Plain data of strings, numbers and booleans: serialising cannot
    // fail, and if it ever did the message says so rather than panic.
    serde_json::to_string_pretty(report)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the report: {e}\"}}"))
        + "\n"
}
