//! Nova's answers typed, once: how a call failed as far as the caller's
//! next move is concerned. A 409 says whether the server is busy with a
//! task (retry after it) or in the wrong state for the call (re-read it and
//! plan again), from the "while it is in task_state X" / "vm_state X" that
//! Nova puts in every such message; callers decide on [`NovaErrorKind`],
//! never on message text.

use std::time::Duration;

use osauth::ErrorKind;

use crate::backend::nova::states::{TaskState, VmState};

/// How a call failed, as far as the caller's next move is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NovaErrorKind {
    /// 409 while the server runs a task: retry once the task is over.
    Busy(TaskState),
    /// 409 because the call does not apply to the server's vm_state
    /// (start of an active server, stop of a rescued one): read the server
    /// again and plan from what it really is.
    WrongState(VmState),
    /// Any other 409 (a locked server, say): retry later.
    Conflict,
    /// 404: the server (or image) does not exist.
    NotFound,
    /// Keystone refused the credentials.
    Auth,
    /// No complete answer within the request timeout.
    Timeout,
    /// 5xx, refused or dropped connections, unreadable answers: retry.
    Transient,
    /// The request itself was wrong; retrying will not help.
    Permanent,
    /// 501: the cloud does not implement the call (a serial console on a
    /// virt driver without one).
    NotImplemented,
    /// clouds.yaml or the environment is wrong.
    Config,
}

impl NovaErrorKind {
    /// A stable name, for the metrics' `status` label.
    pub fn name(&self) -> &'static str {
        match self {
            NovaErrorKind::Busy(_) => "busy",
            NovaErrorKind::WrongState(_) => "wrong_state",
            NovaErrorKind::Conflict => "conflict",
            NovaErrorKind::NotFound => "not_found",
            NovaErrorKind::Auth => "auth",
            NovaErrorKind::Timeout => "timeout",
            NovaErrorKind::Transient => "transient",
            NovaErrorKind::Permanent => "permanent",
            NovaErrorKind::NotImplemented => "not_implemented",
            NovaErrorKind::Config => "config",
        }
    }
}

/// A failed call, with Nova's own message.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct NovaError {
    /// For retry decisions.
    pub kind: NovaErrorKind,
    /// Nova's message, or the transport error, naming the call.
    pub message: String,
}

impl NovaError {
    /// Whether waiting and retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            NovaErrorKind::Busy(_)
                | NovaErrorKind::Conflict
                | NovaErrorKind::Timeout
                | NovaErrorKind::Transient
                | NovaErrorKind::Auth
        )
    }

    /// The error of a call that got no complete answer in time.
    pub fn timeout(call: &str, after: Duration) -> Self {
        NovaError {
            kind: NovaErrorKind::Timeout,
            message: format!("{call}: no answer within {after:?}"),
        }
    }

    /// A failure that retrying will not cure.
    pub fn permanent(message: String) -> Self {
        NovaError {
            kind: NovaErrorKind::Permanent,
            message,
        }
    }

    /// Types a 409 from Nova's message: "Cannot 'stop' instance X while it
    /// is in task_state rebooting_hard" or "... in vm_state stopped".
    pub fn conflict(message: String) -> Self {
        let state = message
            .rfind("while it is in ")
            .map(|i| &message[i + "while it is in ".len()..]);
        let word = |s: &str| {
            s.split(|c: char| c.is_whitespace() || c == '.' || c == '"')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let kind = match state {
            Some(s) if s.starts_with("task_state ") => {
                NovaErrorKind::Busy(TaskState::parse(&word(&s["task_state ".len()..])))
            }
            Some(s) if s.starts_with("vm_state ") => {
                NovaErrorKind::WrongState(VmState::parse(&word(&s["vm_state ".len()..])))
            }
            _ => NovaErrorKind::Conflict,
        };
        NovaError { kind, message }
    }

    /// Prefixes the message with the call that failed.
    pub(super) fn during(mut self, call: &str) -> Self {
        self.message = format!("{call}: {}", self.message);
        self
    }
}

impl From<osauth::Error> for NovaError {
    fn from(e: osauth::Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::Conflict => return NovaError::conflict(e.to_string()),
            ErrorKind::ResourceNotFound => NovaErrorKind::NotFound,
            ErrorKind::AuthenticationFailed | ErrorKind::AccessDenied => NovaErrorKind::Auth,
            ErrorKind::InvalidConfig => NovaErrorKind::Config,
            ErrorKind::OperationTimedOut => NovaErrorKind::Timeout,
            ErrorKind::InvalidInput
            | ErrorKind::IncompatibleApiVersion
            | ErrorKind::TooManyItems => NovaErrorKind::Permanent,
            _ => NovaErrorKind::Transient,
        };
        NovaError {
            kind,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_typed_from_novas_message() {
        let e = NovaError::conflict(
            "Requested cannot be fulfilled due to a conflict: Cannot 'stop' instance \
             8a3c while it is in task_state rebooting_hard"
                .into(),
        );
        assert_eq!(e.kind, NovaErrorKind::Busy(TaskState::RebootingHard));
        let e = NovaError::conflict(
            "Cannot 'start' instance 8a3c while it is in vm_state rescued".into(),
        );
        assert_eq!(e.kind, NovaErrorKind::WrongState(VmState::Rescued));
        let e = NovaError::conflict("Instance 8a3c is locked".into());
        assert_eq!(e.kind, NovaErrorKind::Conflict);
        assert!(e.is_retryable());
    }
}
