//! The `maas` format: a shell script of `maas PROFILE machines create`
//! commands, one per node, each on one line.
//!
//! MAAS learns CPUs, memory and disks by commissioning the machine, so the
//! command carries what commissioning cannot find: `hostname`,
//! `architecture` (MAAS's Debian name and the `generic` subarchitecture),
//! one `mac_addresses` parameter per port, and the IPMI power parameters:
//! `power_driver=LAN_2_0`, `power_address=ADDRESS:PORT` (FreeIPMI's form,
//! `[ADDRESS]:PORT` for IPv6), `power_user`, `power_pass`,
//! `cipher_suite_id`, `privilege_level=OPERATOR` (MAAS's default, which
//! FreeIPMI asks for), `power_boot_type` (`efi`, `legacy`, or `auto` when
//! the firmware is unknown) and `k_g` when the BMC has a key. A comment
//! line before each command shows what Nova says about the machine.
//!
//! Every value is quoted for the shell. With `--password-ref` the password
//! is read when the script runs: `"$(cat FILE)"` or `"$VAR"`.

use std::collections::HashMap;
use std::net::IpAddr;

use super::inventory::{BootMode, Entry};
use super::{Access, ExportError, NodeFailure, SecretText};

/// MAAS hostnames are DNS labels.
const MAX_HOSTNAME: usize = 63;

/// Renders the script; `profile` is the MAAS CLI profile, `None` for the
/// shell variable `$PROFILE`.
pub fn render(
    entries: &[Entry],
    access: &Access,
    profile: Option<&str>,
) -> Result<String, ExportError> {
    let heading = format!(
        "# novabmc export --format maas: {} machine(s); BMC user {}, cipher suite {}, {} sessions.\n",
        entries.len(),
        comment_safe(&access.user),
        access.cipher_suite,
        access.privilege.name()
    );
    script(entries, &heading, profile, |e, taken| {
        command(e, access, profile, taken)
    })
}

/// The script: a heading, the profile check, then one comment and command
/// per node from `command`; all or nothing, naming every failing node.
fn script(
    entries: &[Entry],
    heading: &str,
    profile: Option<&str>,
    mut command: impl FnMut(&Entry, &mut HashMap<String, String>) -> Result<String, String>,
) -> Result<String, ExportError> {
    let mut failures = Vec::new();
    let mut taken: HashMap<String, String> = HashMap::new();
    let mut lines = Vec::new();
    for e in entries {
        match command(e, &mut taken) {
            Ok(text) => lines.push(text),
            Err(message) => failures.push(NodeFailure {
                node: e.name.clone(),
                message,
            }),
        }
    }
    if !failures.is_empty() {
        return Err(ExportError::Nodes {
            failures,
            total: entries.len(),
        });
    }
    let mut out = String::from("#!/bin/sh\n");
    out.push_str(heading);
    out.push_str("set -e\n");
    if profile.is_none() {
        out.push_str(
            ": \"${PROFILE:?set PROFILE to your MAAS CLI profile (the name given to maas login)}\"\n",
        );
    }
    for l in lines {
        out.push_str(&l);
    }
    Ok(out)
}

/// The start of a node's `machines create`: the profile, its hostname
/// (unique in the script), architecture and MACs.
fn create_words(
    e: &Entry,
    profile: Option<&str>,
    taken: &mut HashMap<String, String>,
) -> Result<Vec<String>, String> {
    let m = &e.machine;
    let host = hostname(&e.name)?;
    if let Some(other) = taken.insert(host.clone(), e.name.clone()) {
        return Err(format!(
            "its MAAS hostname {host} is also node {other}'s; rename one of them"
        ));
    }
    let arch = architecture(&m.arch)?;
    let mut words = vec![
        "maas".to_string(),
        profile.map_or_else(|| "\"$PROFILE\"".to_string(), quote),
        "machines".into(),
        "create".into(),
        param("hostname", &host),
        param("architecture", &format!("{arch}/generic")),
    ];
    words.extend(m.macs.iter().map(|mac| param("mac_addresses", mac)));
    Ok(words)
}

/// One node's comment and command.
fn command(
    e: &Entry,
    access: &Access,
    profile: Option<&str>,
    taken: &mut HashMap<String, String>,
) -> Result<String, String> {
    let m = &e.machine;
    let address = match e.listen.ip() {
        IpAddr::V4(a) => format!("{a}:{}", e.listen.port()),
        IpAddr::V6(a) => format!("[{a}]:{}", e.listen.port()),
    };
    let boot_type = match m.boot_mode {
        Some(BootMode::Uefi) => "efi",
        Some(BootMode::Bios) => "legacy",
        None => "auto",
    };
    let firmware = m.boot_mode.map_or("firmware unknown", |b| match b {
        BootMode::Uefi => "UEFI",
        BootMode::Bios => "BIOS",
    });
    let mut words = create_words(e, profile, taken)?;
    words.extend([
        param("power_type", "ipmi"),
        param("power_parameters_power_driver", "LAN_2_0"),
        param("power_parameters_power_address", &address),
        param("power_parameters_power_user", &access.user),
        format!(
            "power_parameters_power_pass={}",
            shell_secret(&access.password)
        ),
        param(
            "power_parameters_cipher_suite_id",
            &access.cipher_suite.to_string(),
        ),
        param("power_parameters_privilege_level", access.privilege.name()),
        param("power_parameters_power_boot_type", boot_type),
    ]);
    if let Some(kg) = &access.kg {
        words.push(format!("power_parameters_k_g={}", shell_kg(kg)));
    }
    Ok(format!(
        "# {}: server {} ({}), {} vCPUs, {} MiB RAM, {} GiB disk, {}, {firmware}\n{}\n",
        comment_safe(&e.name),
        comment_safe(&m.server_name),
        m.server_id,
        m.cpus,
        m.memory_mb,
        m.disk_gb,
        m.arch,
        words.join(" ")
    ))
}

/// Renders the script of `redfish` power types: `power_address` is the
/// node's Redfish service (`ADDRESS:PORT`, MAAS adds `https://`), `node_id`
/// its system's Id (the Nova server's UUID).
pub fn render_redfish(
    entries: &[Entry],
    access: &Access,
    profile: Option<&str>,
) -> Result<String, ExportError> {
    let heading = format!(
        "# novabmc export --format maas-redfish: {} machine(s); Redfish user {}.\n",
        entries.len(),
        comment_safe(&access.user)
    );
    script(entries, &heading, profile, |e, taken| {
        redfish_command(e, access, profile, taken)
    })
}

fn redfish_command(
    e: &Entry,
    access: &Access,
    profile: Option<&str>,
    taken: &mut HashMap<String, String>,
) -> Result<String, String> {
    let m = &e.machine;
    let Some(url) = &e.redfish else {
        return Err("Redfish is not served for it".into());
    };
    let address = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let mut words = create_words(e, profile, taken)?;
    words.extend([
        param("power_type", "redfish"),
        param("power_parameters_power_address", address),
        param("power_parameters_power_user", &access.user),
        format!(
            "power_parameters_power_pass={}",
            shell_secret(&access.password)
        ),
        param("power_parameters_node_id", &m.server_id),
    ]);
    Ok(format!(
        "# {}: server {} ({}), Redfish at {url}\n{}\n",
        comment_safe(&e.name),
        comment_safe(&m.server_name),
        m.server_id,
        words.join(" ")
    ))
}

/// `key=value` with the value quoted.
fn param(key: &str, value: &str) -> String {
    format!("{key}={}", quote(value))
}

/// A comment ends at the line's end; keep names from ending it early.
fn comment_safe(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The node name as a MAAS hostname: a DNS label, other characters
/// (`_` above all) becoming `-`, as OVB does for Nova names.
fn hostname(name: &str) -> Result<String, String> {
    let mapped: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() || trimmed.len() > MAX_HOSTNAME {
        return Err(format!(
            "{name:?} does not make a MAAS hostname (1 to {MAX_HOSTNAME} letters, digits \
             and hyphens); rename the node in the configuration"
        ));
    }
    Ok(trimmed.to_string())
}

/// MAAS names architectures as Debian does.
fn architecture(arch: &str) -> Result<&'static str, String> {
    match arch {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        "ppc64le" => Ok("ppc64el"),
        "s390x" => Ok("s390x"),
        "i686" => Ok("i386"),
        "armv7l" => Ok("armhf"),
        other => Err(format!(
            "MAAS has no architecture for {other:?} (from the image's hw_architecture \
             or architecture property)"
        )),
    }
}

/// Quotes a word for a POSIX shell: as it is when every character is
/// plain, else in single quotes (a quote inside becoming `'\''`).
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whether `name` can be written `$name`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A shell command printing the secret's source (with a trailing newline
/// at most, which `$(...)` drops as the configuration does).
fn secret_source(s: &SecretText) -> Option<String> {
    match s {
        SecretText::Value(_) => None,
        SecretText::File(p) => Some(format!("cat -- {}", quote(&p.to_string_lossy()))),
        SecretText::Env(v) => Some(format!("printenv -- {}", quote(v))),
    }
}

/// The password as a shell word.
fn shell_secret(s: &SecretText) -> String {
    match s {
        SecretText::Value(v) => quote(v),
        SecretText::Env(v) if is_identifier(v) => format!("\"${v}\""),
        other => format!("\"$({})\"", secret_source(other).unwrap_or_default()),
    }
}

/// The BMC key as FreeIPMI takes it: hexadecimal after `0x`. A referenced
/// key is read as the configuration reads it (blanks and a leading `0x`
/// ignored).
fn shell_kg(s: &SecretText) -> String {
    match s {
        SecretText::Value(hex) => quote(&format!("0x{hex}")),
        other => format!(
            "\"0x$({} | tr -d '[:space:]' | sed 's/^0x//')\"",
            secret_source(other).unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("fa:16:3e:00:00:01"), "fa:16:3e:00:00:01");
        assert_eq!(quote("[fd00::10]:623"), "'[fd00::10]:623'");
        assert_eq!(quote("it's $HOME"), r"'it'\''s $HOME'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("~root"), "'~root'");
    }

    #[test]
    fn hostnames_and_architectures() {
        assert_eq!(hostname("compute_0").as_deref(), Ok("compute-0"));
        assert_eq!(hostname("-rack.1-").as_deref(), Ok("rack-1"));
        assert!(hostname("__").is_err());
        assert!(hostname(&"a".repeat(64)).is_err());
        assert_eq!(architecture("aarch64"), Ok("arm64"));
        assert_eq!(architecture("ppc64le"), Ok("ppc64el"));
        assert!(architecture("riscv64").is_err());
    }

    #[test]
    fn secrets_in_the_shell() {
        assert_eq!(shell_secret(&SecretText::Env("PW".into())), "\"$PW\"");
        assert_eq!(
            shell_secret(&SecretText::Env("my-pw".into())),
            "\"$(printenv -- my-pw)\""
        );
        assert_eq!(
            shell_secret(&SecretText::Env("my pw".into())),
            "\"$(printenv -- 'my pw')\""
        );
        assert_eq!(
            shell_secret(&SecretText::File("/etc/novabmc/a b.pw".into())),
            "\"$(cat -- '/etc/novabmc/a b.pw')\""
        );
        assert_eq!(shell_kg(&SecretText::Value("0102".into())), "0x0102");
    }
}
