//! BMC users: name, password and privilege limit (IPMI v2.0 section 6.9 and
//! the RAKP1 user lookup of section 13.20).
//!
//! Names are at most 16 bytes and passwords at most 20 (the IPMI 2.0 key
//! length). Null user names and empty passwords are refused when the table
//! is built, so anonymous login can never be configured. A name that came
//! off the wire is a [`UserName`]: cut at 16 bytes and escaped when shown,
//! because anyone can send one.

use zeroize::Zeroizing;

use crate::wire::ids::Privilege;
use crate::wire::rakp::MAX_USER_NAME;

/// Longest IPMI 2.0 password.
pub const MAX_PASSWORD: usize = 20;

/// A user name as it came off the wire, for events and logs: at most 16
/// bytes (longer ones are cut), shown with every byte that is not printable
/// ASCII escaped as `\xNN`, so a name can neither forge log lines nor
/// smuggle terminal control sequences.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UserName {
    bytes: [u8; MAX_USER_NAME],
    len: u8,
}

impl UserName {
    /// The first 16 bytes of `name`.
    pub fn new(name: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_USER_NAME];
        let len = name.len().min(MAX_USER_NAME);
        bytes[..len].copy_from_slice(&name[..len]);
        UserName {
            bytes,
            len: len as u8,
        }
    }

    /// The bytes as received (cut at 16).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Display for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for b in self.as_bytes() {
            match b {
                b'\\' => f.write_str("\\\\")?,
                0x21..=0x7e => f.write_char(char::from(*b))?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// One user.
pub struct User {
    name: Vec<u8>,
    password: Zeroizing<Vec<u8>>,
    privilege: Privilege,
    id: u8,
}

impl User {
    /// The user name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The password, which is the key Kuid of the RAKP HMACs.
    pub fn password(&self) -> &[u8] {
        &self.password
    }

    /// The highest privilege this user may reach.
    pub fn privilege(&self) -> Privilege {
        self.privilege
    }

    /// The user ID reported by Get Session Info and Get User Access: 2 for
    /// the first configured user, as ID 1 is the spec's null user. Kept by
    /// [`Users::keeping_ids`] across a reload.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Whether `other` is the same user with the same rights: name,
    /// password and privilege limit. A session of a user for whom this
    /// fails after a reload must end.
    pub fn same_as(&self, other: &User) -> bool {
        self.name == other.name
            && *self.password == *other.password
            && self.privilege == other.privilege
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("privilege", &self.privilege)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a user could not be added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// Empty name: null users are never allowed.
    #[error("user name must not be empty")]
    EmptyName,
    /// Name longer than 16 bytes.
    #[error("user name {0:?} is longer than 16 bytes")]
    NameTooLong(String),
    /// Empty password.
    #[error("password of user {0:?} must not be empty")]
    EmptyPassword(String),
    /// Password longer than 20 bytes.
    #[error("password of user {0:?} is longer than 20 bytes")]
    PasswordTooLong(String),
    /// Same name twice.
    #[error("user {0:?} is defined twice")]
    Duplicate(String),
    /// More users than a user ID field can number (six bits, ID 1 being
    /// the null user).
    #[error("too many users (at most 62)")]
    TooMany,
}

/// The user table shared by every node of a process.
#[derive(Debug, Default)]
pub struct Users {
    list: Vec<User>,
}

impl Users {
    /// An empty table.
    pub fn new() -> Self {
        Users::default()
    }

    /// Adds a user, checking the limits IPMI places on names and passwords.
    pub fn add(
        &mut self,
        name: &str,
        password: &[u8],
        privilege: Privilege,
    ) -> Result<(), UserError> {
        let shown = name.to_string();
        if name.is_empty() {
            return Err(UserError::EmptyName);
        }
        if name.len() > MAX_USER_NAME {
            return Err(UserError::NameTooLong(shown));
        }
        if password.is_empty() {
            return Err(UserError::EmptyPassword(shown));
        }
        if password.len() > MAX_PASSWORD {
            return Err(UserError::PasswordTooLong(shown));
        }
        if self.find(name.as_bytes()).is_some() {
            return Err(UserError::Duplicate(shown));
        }
        let Some(id) = (2..=63).find(|id| self.by_id(*id).is_none()) else {
            return Err(UserError::TooMany);
        };
        self.list.push(User {
            name: name.as_bytes().to_vec(),
            password: Zeroizing::new(password.to_vec()),
            privilege,
            id,
        });
        Ok(())
    }

    /// Looks a user up by name.
    pub fn find(&self, name: &[u8]) -> Option<&User> {
        self.list.iter().find(|u| u.name == name)
    }

    /// Looks a user up by ID (the null user, ID 1, is nobody).
    pub fn by_id(&self, id: u8) -> Option<&User> {
        self.list.iter().find(|u| u.id == id)
    }

    /// This table numbered after `previous`: a user `previous` has (by
    /// name) keeps its ID, the others take the lowest free ones, in this
    /// table's order. So adding or removing a user never renumbers the
    /// others, and a session's user ID names the same person after a
    /// reload.
    pub fn keeping_ids(self, previous: &Users) -> Users {
        let mut kept: Vec<User> = Vec::with_capacity(self.list.len());
        let mut fresh = Vec::new();
        for mut u in self.list {
            match previous.find(&u.name) {
                Some(p) => {
                    u.id = p.id;
                    kept.push(u);
                }
                None => fresh.push(u),
            }
        }
        let mut out = Users { list: kept };
        for mut u in fresh {
            // At most 62 users in either table, so an ID is free.
            if let Some(id) = (2..=63).find(|id| out.by_id(*id).is_none()) {
                u.id = id;
                out.list.push(u);
            }
        }
        out
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_ipmi_cannot_carry() {
        let mut u = Users::new();
        assert_eq!(u.add("", b"x", Privilege::User), Err(UserError::EmptyName));
        assert!(matches!(
            u.add("a-name-that-is-too-long", b"x", Privilege::User),
            Err(UserError::NameTooLong(_))
        ));
        assert!(matches!(
            u.add("admin", b"", Privilege::User),
            Err(UserError::EmptyPassword(_))
        ));
        assert!(matches!(
            u.add("admin", &[b'x'; 21], Privilege::User),
            Err(UserError::PasswordTooLong(_))
        ));
        u.add("admin", b"password", Privilege::Administrator)
            .expect("add");
        assert!(matches!(
            u.add("admin", b"other", Privilege::User),
            Err(UserError::Duplicate(_))
        ));
        assert_eq!(u.find(b"admin").map(User::id), Some(2));
        // Renumbered after the previous table: admin keeps 2 although a
        // user sorting before it came first.
        let mut next = Users::new();
        next.add("aaa", b"x", Privilege::User).expect("add");
        next.add("admin", b"password", Privilege::Administrator)
            .expect("add");
        let next = next.keeping_ids(&u);
        assert_eq!(next.find(b"admin").map(User::id), Some(2));
        assert_eq!(next.find(b"aaa").map(User::id), Some(3));
        assert_eq!(next.by_id(3).map(User::name), Some(&b"aaa"[..]));
        assert_eq!(
            u.by_id(2).map(User::privilege),
            Some(Privilege::Administrator)
        );
        assert!(u.by_id(0).is_none());
        assert!(u.by_id(1).is_none(), "ID 1 is the null user");
        assert!(!format!("{:?}", u).contains("password"));
    }

    #[test]
    fn wire_names_are_cut_and_escaped() {
        assert_eq!(UserName::new(b"admin").to_string(), "admin");
        assert_eq!(
            UserName::new(b"a b\n\x1b[2J\\\xff").to_string(),
            "a\\x20b\\x0a\\x1b[2J\\\\\\xff"
        );
        let long = UserName::new(b"0123456789abcdefXYZ");
        assert_eq!(long.to_string(), "0123456789abcdef");
        assert_eq!(long.as_bytes().len(), 16);
    }
}
