//! `[users.NAME]`: who may log in (IPMI 2.0 section 13.31: RAKP
//! authenticates with the user's password) and the highest privilege each
//! may ask for (section 6.8). The engine's own user table checks names and
//! password lengths, so the limits are the engine's.

use std::collections::BTreeMap;

use novabmc_proto::Privilege;
use novabmc_proto::user::UserError;
use serde::Deserialize;

use super::error::{Checker, ConfigError};
use super::secret::{Secret, SecretBytes, warn_if_exposed};

/// `[users.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    password: Secret,
    privilege: Option<String>,
}

/// A user as configured.
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Password bytes.
    pub password: SecretBytes,
    /// Where the password came from, so `novabmc export --password-ref`
    /// can name the file or variable instead of printing the secret.
    pub password_source: Secret,
    /// Privilege limit.
    pub privilege: Privilege,
}

/// Validates the users, in name order; at least one is needed.
pub(super) fn check(
    raw: BTreeMap<String, RawUser>,
    c: &Checker<'_>,
) -> Result<Vec<UserConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(c.error("users", "at least one user is needed"));
    }
    let mut users = Vec::new();
    let mut table = novabmc_proto::Users::new();
    for (name, u) in raw {
        let key = format!("users.{name}");
        warn_if_exposed(&format!("{key}.password"), &u.password);
        let password = u
            .password
            .resolve()
            .map_err(|e| c.error(&format!("{key}.password"), e))?;
        let privilege = match u.privilege.as_deref() {
            None => Privilege::Administrator,
            Some(p) => parse_privilege(p).ok_or_else(|| {
                c.error(
                    &format!("{key}.privilege"),
                    format!("unknown privilege {p:?} (callback, user, operator, administrator)"),
                )
            })?,
        };
        table.add(&name, &password, privilege).map_err(|e| {
            let field = match e {
                UserError::EmptyPassword(_) | UserError::PasswordTooLong(_) => "password",
                _ => "name",
            };
            c.error(&format!("{key}.{field}"), e.to_string())
        })?;
        users.push(UserConfig {
            name,
            password,
            password_source: u.password,
            privilege,
        });
    }
    Ok(users)
}

/// Parses a privilege name as ipmitool spells it (any case).
pub fn parse_privilege(s: &str) -> Option<Privilege> {
    match s.to_ascii_lowercase().as_str() {
        "callback" => Some(Privilege::Callback),
        "user" => Some(Privilege::User),
        "operator" => Some(Privilege::Operator),
        "administrator" | "admin" => Some(Privilege::Administrator),
        _ => None,
    }
}
