//! `novabmc export`: what Ironic, TripleO or MAAS needs to enroll the nodes
//! of a configuration, one entry per node, so nobody copies addresses,
//! passwords and MACs by hand:
//!
//! - `ironic`: a file `openstack baremetal create` accepts ([`ironic`]);
//! - `instackenv`: TripleO's `nodes.json` ([`instackenv`]);
//! - `maas`: `maas PROFILE machines create` commands ([`maas`]).
//!
//! The BMC side comes from the configuration: each node's address and port,
//! one user (`--user`, else the first user whose privilege the consumer
//! needs: Ironic and TripleO open ADMINISTRATOR sessions, MAAS OPERATOR
//! ones), the cipher suite clients should ask for (17 when enabled, else
//! 3) and the BMC key when one is set. The machine side comes from the
//! cloud ([`inventory`]): MACs, vCPUs, RAM, root disk, architecture and
//! firmware, read for the server each node resolves to exactly as `serve`
//! resolves it.
//!
//! Secrets are written as they are, unless `--password-ref` asks for a
//! reference to where the configuration reads them (a file or an
//! environment variable; an inline secret is then an error, as there is
//! nothing to refer to). JSON formats write `"file:PATH"` or `"env:VAR"`
//! in place of the value, to be substituted before use; MAAS commands read
//! the file or variable when the shell runs them.
//!
//! An export is all or nothing: if any node fails (its server missing or
//! ambiguous, a cloud call failing, a value the consumer cannot take),
//! nothing is written and the error names every failing node, so a partial
//! inventory never gets enrolled by mistake.
//!
//! With `[discovery]`, the servers it picks are exported too, under the
//! node names and BMC addresses `serve` gives them
//! ([`crate::discovery::resolve`]); the addresses are recorded in the
//! servers' metadata first, so `serve` keeps them. A server discovery
//! cannot give an address (or record it for), or a cloud it cannot list,
//! fails the export as a failing node does.

pub mod instackenv;
pub mod inventory;
pub mod ironic;
pub mod maas;

use std::fmt;
use std::path::{Path, PathBuf};

use novabmc_proto::Privilege;

use crate::backend::nova::client::NovaError;
use crate::config::{BackendConfig, Config, Secret, SecretBytes, UserConfig};
use inventory::Entry;

/// The cipher suites to export, in order of preference: what Ironic's
/// `ipmi_cipher_suite` and MAAS's `cipher_suite_id` are meant to carry.
const PREFERRED_SUITES: [u8; 2] = [17, 3];

/// What to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A JSON file for `openstack baremetal create` (driver `ipmi`, with
    /// ports).
    Ironic,
    /// TripleO's instackenv.json / nodes.json.
    Instackenv,
    /// `maas PROFILE machines create` commands (power type `ipmi`).
    Maas,
    /// A JSON file for `openstack baremetal create` with driver `redfish`.
    IronicRedfish,
    /// `maas PROFILE machines create` commands with power type `redfish`.
    MaasRedfish,
}

impl Format {
    /// Who reads the output, for messages.
    pub fn consumer(self) -> &'static str {
        match self {
            Format::Ironic => "Ironic",
            Format::Instackenv => "TripleO (Ironic)",
            Format::Maas | Format::MaasRedfish => "MAAS",
            Format::IronicRedfish => "Ironic",
        }
    }

    /// Whether the nodes are enrolled with their Redfish service.
    pub fn is_redfish(self) -> bool {
        matches!(self, Format::IronicRedfish | Format::MaasRedfish)
    }

    /// The privilege the consumer asks for when it opens a session: the
    /// BMC refuses a session above the user's own limit, so the exported
    /// user must have at least this.
    pub fn session_privilege(self) -> Privilege {
        match self {
            Format::Ironic | Format::Instackenv => Privilege::Administrator,
            // Redfish's Operator role resets and sets boot overrides.
            Format::Maas | Format::IronicRedfish | Format::MaasRedfish => Privilege::Operator,
        }
    }
}

/// The command line's choices.
#[derive(Clone, Debug)]
pub struct Options {
    /// Output format.
    pub format: Format,
    /// The BMC user to export; `None` picks the first suitable one.
    pub user: Option<String>,
    /// Refer to secrets instead of writing them.
    pub password_ref: bool,
    /// The MAAS CLI profile; `None` writes `"$PROFILE"`.
    pub maas_profile: Option<String>,
}

/// One node that could not be exported, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFailure {
    /// Node name.
    pub node: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}: {}", self.node, self.message)
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Only Nova servers have what an export needs.
    #[error(
        "export reads the machines from Nova, but backend.type is \"simulated\"; \
         configure [backend] type = \"nova\""
    )]
    NotNova,
    /// A Redfish format without a Redfish service.
    #[error("the Redfish formats need the Redfish service: add a [redfish] section")]
    NoRedfish,
    /// `--user` names nobody.
    #[error("no user {name:?} in the configuration (users: {known})")]
    NoSuchUser {
        /// The name asked for.
        name: String,
        /// The configured names.
        known: String,
    },
    /// No configured user has the privilege the consumer needs.
    #[error(
        "no user has {} privilege or above, which {consumer} asks for when it \
         opens a session; add one or name one with --user",
        needed.name()
    )]
    NoUser {
        /// Who reads the export.
        consumer: &'static str,
        /// What it asks for.
        needed: Privilege,
    },
    /// The chosen user could not open the consumer's sessions.
    #[error(
        "user {name} is limited to {} privilege, but {consumer} opens sessions at {}, \
         which the BMC would refuse for this user",
        has.name(),
        needed.name()
    )]
    PrivilegeTooLow {
        /// The user.
        name: String,
        /// Its limit.
        has: Privilege,
        /// Who reads the export.
        consumer: &'static str,
        /// What it asks for.
        needed: Privilege,
    },
    /// `--password-ref` with a secret written in the configuration itself.
    #[error(
        "{what} is inline in the configuration, so --password-ref has nothing to \
         refer to; read it from a file ({{ file = \"...\" }}) or an environment \
         variable ({{ env = \"...\" }}), or export without --password-ref"
    )]
    InlineSecret {
        /// Which secret (`the password of user admin`, `bmc.kg`).
        what: String,
    },
    /// A secret that JSON and shell text cannot carry as it is.
    #[error("{what} is not UTF-8 text; export it with --password-ref")]
    NotText {
        /// Which secret.
        what: String,
    },
    /// Neither suite 17 nor 3 is enabled.
    #[error(
        "bmc.cipher_suites enables neither 17 nor 3, the suites {consumer} is meant \
         to use; enable one of them"
    )]
    NoCipherSuite {
        /// Who reads the export.
        consumer: &'static str,
    },
    /// clouds.yaml or the environment is wrong.
    #[error("cannot read the cloud configuration: {0}")]
    Cloud(String),
    /// Keystone or Nova cannot be reached, or refuse.
    #[error("cannot reach {cloud} to list its servers: {error}")]
    Unreachable {
        /// Which cloud.
        cloud: String,
        /// What failed (not a `source`: the message already says it).
        error: NovaError,
    },
    /// Discovery could not look at the cloud.
    #[error("discovery: {0}")]
    Discovery(String),
    /// Some nodes failed; nothing was exported.
    #[error(
        "{} of {total} nodes cannot be exported, so nothing was:\n  {}",
        failures.len(),
        failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    Nodes {
        /// Every failing node.
        failures: Vec<NodeFailure>,
        /// How many nodes the configuration has.
        total: usize,
    },
}

/// A secret as the export writes it.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretText {
    /// The secret itself.
    Value(String),
    /// The contents of this file (without trailing newlines).
    File(PathBuf),
    /// The value of this environment variable.
    Env(String),
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretText::Value(_) => f.write_str("SecretText::Value(<redacted>)"),
            SecretText::File(p) => write!(f, "SecretText::File({})", p.display()),
            SecretText::Env(v) => write!(f, "SecretText::Env({v})"),
        }
    }
}

impl SecretText {
    /// The text JSON formats carry: the value, or the placeholder
    /// `file:PATH` or `env:VAR` to substitute before enrolling.
    pub fn json_text(&self) -> String {
        match self {
            SecretText::Value(v) => v.clone(),
            SecretText::File(p) => format!("file:{}", p.display()),
            SecretText::Env(v) => format!("env:{v}"),
        }
    }
}

/// How the consumer reaches every BMC.
#[derive(Clone, Debug)]
pub struct Access {
    /// The user.
    pub user: String,
    /// Its password.
    pub password: SecretText,
    /// The BMC key as hexadecimal (Ironic's `ipmi_hex_kg_key`), if set.
    pub kg: Option<SecretText>,
    /// The cipher suite to ask for.
    pub cipher_suite: u8,
    /// The session privilege the consumer asks for.
    pub privilege: Privilege,
}

impl Access {
    /// Chooses the user, cipher suite and secrets for `options` without
    /// contacting the cloud, so configuration mistakes show first.
    pub fn from_config(config: &Config, options: &Options) -> Result<Access, ExportError> {
        let format = options.format;
        let user = choose_user(&config.users, options.user.as_deref(), format)?;
        let cipher_suite = PREFERRED_SUITES
            .into_iter()
            .find(|id| config.bmc.cipher_suites.iter().any(|s| s.id == *id))
            .ok_or(ExportError::NoCipherSuite {
                consumer: format.consumer(),
            })?;
        let password = secret_text(
            &format!("the password of user {}", user.name),
            &user.password,
            &user.password_source,
            options.password_ref,
            false,
        )?;
        let kg = match (&config.bmc.kg, &config.bmc.kg_source) {
            (Some(bytes), Some(source)) => Some(secret_text(
                "the BMC key bmc.kg",
                bytes,
                source,
                options.password_ref,
                true,
            )?),
            (Some(bytes), None) => Some(SecretText::Value(hex::encode(&bytes[..]))),
            _ => None,
        };
        Ok(Access {
            user: user.name.clone(),
            password,
            kg,
            cipher_suite,
            privilege: format.session_privilege(),
        })
    }
}

/// `--user NAME`, else the first user (in name order) with the privilege
/// the consumer's sessions need.
fn choose_user<'a>(
    users: &'a [UserConfig],
    wanted: Option<&str>,
    format: Format,
) -> Result<&'a UserConfig, ExportError> {
    let needed = format.session_privilege();
    match wanted {
        Some(name) => {
            let user =
                users
                    .iter()
                    .find(|u| u.name == name)
                    .ok_or_else(|| ExportError::NoSuchUser {
                        name: name.to_string(),
                        known: users
                            .iter()
                            .map(|u| u.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
            if user.privilege < needed {
                return Err(ExportError::PrivilegeTooLow {
                    name: user.name.clone(),
                    has: user.privilege,
                    consumer: format.consumer(),
                    needed,
                });
            }
            Ok(user)
        }
        None => users
            .iter()
            .find(|u| u.privilege >= needed)
            .ok_or(ExportError::NoUser {
                consumer: format.consumer(),
                needed,
            }),
    }
}

/// The secret, or with `by_ref` a reference to where it is read from;
/// `hex` writes the bytes as hexadecimal (the BMC key).
fn secret_text(
    what: &str,
    bytes: &SecretBytes,
    source: &Secret,
    by_ref: bool,
    hex: bool,
) -> Result<SecretText, ExportError> {
    if by_ref {
        return match source {
            Secret::Inline(_) => Err(ExportError::InlineSecret {
                what: what.to_string(),
            }),
            Secret::File { file } => Ok(SecretText::File(absolute(file))),
            Secret::Env { env } => Ok(SecretText::Env(env.clone())),
        };
    }
    if hex {
        return Ok(SecretText::Value(hex::encode(&bytes[..])));
    }
    String::from_utf8(bytes.to_vec())
        .map(SecretText::Value)
        .map_err(|_| ExportError::NotText {
            what: what.to_string(),
        })
}

/// A reference must still hold wherever the output is used, so relative
/// paths (read from the working directory) become absolute.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Reads the nodes' machines from the cloud and renders them: the whole
/// `novabmc export`, short of writing the result.
pub async fn export(config: &Config, options: &Options) -> Result<String, ExportError> {
    let BackendConfig::Nova(nova) = &config.backend else {
        return Err(ExportError::NotNova);
    };
    let access = Access::from_config(config, options)?;
    if options.format.is_redfish() && config.redfish.is_none() {
        return Err(ExportError::NoRedfish);
    }
    let resolved = crate::discovery::resolve(config, true).await;
    if let Some(e) = resolved.error {
        return Err(ExportError::Discovery(e));
    }
    let failures: Vec<NodeFailure> = resolved
        .notes
        .iter()
        .filter(|n| n.is_problem() || matches!(n, crate::discovery::Note::NotRecorded { .. }))
        .map(|n| NodeFailure {
            node: "(discovered)".into(),
            message: n.to_string(),
        })
        .collect();
    let config = &resolved.config;
    if !failures.is_empty() {
        return Err(ExportError::Nodes {
            total: config.nodes.len() + failures.len(),
            failures,
        });
    }
    let entries = inventory::gather(&nova.settings, &config.nodes, config.redfish.as_ref()).await?;
    render(&entries, &access, options)
}

/// Renders gathered entries in the chosen format.
pub fn render(
    entries: &[Entry],
    access: &Access,
    options: &Options,
) -> Result<String, ExportError> {
    match options.format {
        Format::Ironic => ironic::render(entries, access),
        Format::Instackenv => instackenv::render(entries, access),
        Format::Maas => maas::render(entries, access, options.maas_profile.as_deref()),
        Format::IronicRedfish => ironic::render_redfish(entries, access),
        Format::MaasRedfish => {
            maas::render_redfish(entries, access, options.maas_profile.as_deref())
        }
    }
}

/// Ironic node names (API 1.10 and later) are made of letters, digits and
/// `-._~`; checked here so the export fails with the node's name rather
/// than the enrollment with a 400.
fn check_ironic_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid Ironic node name (letters, digits and -._~ only); \
             rename the node in the configuration"
        ))
    }
}

/// Fails with every node `check` rejects.
fn check_all(
    entries: &[Entry],
    check: impl Fn(&Entry) -> Result<(), String>,
) -> Result<(), ExportError> {
    let failures: Vec<NodeFailure> = entries
        .iter()
        .filter_map(|e| {
            check(e).err().map(|message| NodeFailure {
                node: e.name.clone(),
                message,
            })
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ExportError::Nodes {
            failures,
            total: entries.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, privilege: Privilege, source: Secret) -> UserConfig {
        UserConfig {
            name: name.into(),
            password: SecretBytes::new(b"pw".to_vec()),
            password_source: source,
            privilege,
        }
    }

    #[test]
    fn default_user_is_the_first_with_the_needed_privilege() {
        let inline = Secret::Inline("pw".into());
        let users = [
            user("a-viewer", Privilege::User, inline.clone()),
            user("b-op", Privilege::Operator, inline.clone()),
            user("c-admin", Privilege::Administrator, inline.clone()),
        ];
        let pick = |f| choose_user(&users, None, f).map(|u| u.name.as_str());
        assert_eq!(pick(Format::Ironic).ok(), Some("c-admin"));
        assert_eq!(pick(Format::Instackenv).ok(), Some("c-admin"));
        assert_eq!(pick(Format::Maas).ok(), Some("b-op"));
        let e = choose_user(&users, Some("b-op"), Format::Ironic).expect_err("too low");
        assert!(e.to_string().contains("OPERATOR"), "{e}");
        let e = choose_user(&users, Some("nobody"), Format::Maas).expect_err("unknown");
        assert!(e.to_string().contains("a-viewer, b-op, c-admin"), "{e}");
        let e = choose_user(&users[..2], None, Format::Ironic).expect_err("no admin");
        assert!(e.to_string().contains("ADMINISTRATOR"), "{e}");
    }

    #[test]
    fn references_name_the_source_and_refuse_inline_secrets() {
        let bytes = SecretBytes::new(b"s3cret".to_vec());
        let env = Secret::Env {
            env: "PW_VAR".into(),
        };
        assert_eq!(
            secret_text("x", &bytes, &env, true, false).ok(),
            Some(SecretText::Env("PW_VAR".into()))
        );
        let file = Secret::File {
            file: "admin.pw".into(),
        };
        match secret_text("x", &bytes, &file, true, false) {
            Ok(SecretText::File(p)) => assert!(p.is_absolute() && p.ends_with("admin.pw")),
            other => panic!("{other:?}"),
        }
        let inline = Secret::Inline("s3cret".into());
        assert!(matches!(
            secret_text("x", &bytes, &inline, true, false),
            Err(ExportError::InlineSecret { .. })
        ));
        assert_eq!(
            secret_text("x", &bytes, &inline, false, false).ok(),
            Some(SecretText::Value("s3cret".into()))
        );
        assert_eq!(
            secret_text("x", &SecretBytes::new(vec![1, 0xab]), &inline, false, true).ok(),
            Some(SecretText::Value("01ab".into()))
        );
        assert!(matches!(
            secret_text("x", &SecretBytes::new(vec![0xff]), &inline, false, false),
            Err(ExportError::NotText { .. })
        ));
        let shown = format!("{:?}", SecretText::Value("s3cret".into()));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn ironic_names() {
        assert!(check_ironic_name("compute-0.rack_1~a").is_ok());
        assert!(check_ironic_name("compute 0").is_err());
        assert!(check_ironic_name("").is_err());
    }
}
