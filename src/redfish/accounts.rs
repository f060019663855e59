//! Who may use the Redfish service: the configured users, each with the
//! Redfish role its IPMI privilege maps to (DSP0268 Role; DSP0266 section
//! 13.3: Administrator, Operator, ReadOnly), and the check of a name and
//! password, in constant time over the password.

use novabmc_proto::Privilege;
use sha2::{Digest, Sha256};

use crate::config::{SecretBytes, UserConfig};

/// A Redfish role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every privilege.
    Administrator,
    /// Login, ConfigureComponents, ConfigureSelf: power and boot.
    Operator,
    /// Login and ConfigureSelf: reads, and its own session.
    ReadOnly,
}

impl Role {
    /// The role of an IPMI privilege; callback has none (it cannot log
    /// in to Redfish at all).
    pub fn of(p: Privilege) -> Option<Role> {
        match p {
            Privilege::Administrator => Some(Role::Administrator),
            Privilege::Operator => Some(Role::Operator),
            Privilege::User => Some(Role::ReadOnly),
            Privilege::Callback => None,
        }
    }

    /// The role's Id, as Redfish names the predefined roles.
    pub fn id(self) -> &'static str {
        match self {
            Role::Administrator => "Administrator",
            Role::Operator => "Operator",
            Role::ReadOnly => "ReadOnly",
        }
    }

    /// Whether it holds ConfigureComponents (resets, boot settings).
    pub fn configures_components(self) -> bool {
        matches!(self, Role::Administrator | Role::Operator)
    }

    /// The privileges it holds, for the Role resource.
    pub fn privileges(self) -> &'static [&'static str] {
        match self {
            Role::Administrator => &[
                "Login",
                "ConfigureManager",
                "ConfigureUsers",
                "ConfigureComponents",
                "ConfigureSelf",
            ],
            Role::Operator => &["Login", "ConfigureComponents", "ConfigureSelf"],
            Role::ReadOnly => &["Login", "ConfigureSelf"],
        }
    }

    /// Every role.
    pub const ALL: [Role; 3] = [Role::Administrator, Role::Operator, Role::ReadOnly];
}

/// One account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its name (also its Id: stable across reloads, unlike a position).
    pub name: String,
    password: SecretBytes,
    /// Its role.
    pub role: Role,
}

impl Account {
    /// A digest of the password, so a session can tell that its account's
    /// password changed without keeping the password.
    pub fn password_digest(&self) -> [u8; 32] {
        Sha256::digest(&*self.password).into()
    }
}

/// The accounts, in name order.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// The accounts.
    pub list: Vec<Account>,
}

impl Accounts {
    /// The configured users that have a Redfish role.
    pub fn from_users(users: &[UserConfig]) -> Accounts {
        Accounts {
            list: users
                .iter()
                .filter_map(|u| {
                    Some(Account {
                        name: u.name.clone(),
                        password: u.password.clone(),
                        role: Role::of(u.privilege)?,
                    })
                })
                .collect(),
        }
    }

    /// The account named `name`.
    pub fn get(&self, name: &str) -> Option<&Account> {
        self.list.iter().find(|a| a.name == name)
    }

    /// The account these credentials open. Every password is compared in
    /// full whatever it holds, and an unknown name costs a comparison too,
    /// so timing tells neither names nor passwords.
    pub fn verify(&self, name: &str, password: &[u8]) -> Option<&Account> {
        let mut found = None;
        for a in &self.list {
            let same = constant_time_eq(&a.password, password) & (a.name == name);
            if same {
                found = Some(a);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    let n = a.len().max(b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn user(name: &str, password: &str, privilege: Privilege) -> UserConfig {
        UserConfig {
            name: name.into(),
            password: SecretBytes::new(password.as_bytes().to_vec()),
            password_source: Secret::Inline(password.into()),
            privilege,
        }
    }

    #[test]
    fn privileges_map_to_roles_and_callback_has_none() {
        let a = Accounts::from_users(&[
            user("admin", "pw", Privilege::Administrator),
            user("op", "pw", Privilege::Operator),
            user("ro", "pw", Privilege::User),
            user("cb", "pw", Privilege::Callback),
        ]);
        assert_eq!(a.get("admin").map(|a| a.role), Some(Role::Administrator));
        assert_eq!(a.get("op").map(|a| a.role), Some(Role::Operator));
        assert_eq!(a.get("ro").map(|a| a.role), Some(Role::ReadOnly));
        assert!(a.get("cb").is_none());
        assert!(a.verify("op", b"pw").is_some());
        assert!(a.verify("op", b"pw2").is_none());
        assert!(a.verify("op", b"p").is_none());
        assert!(a.verify("nobody", b"pw").is_none());
    }
}
