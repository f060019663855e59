//! What a run found and did, one line per resource, as `routes show`
//! reports routes: `node-1: port novabmc-bmc-node-1 10.20.0.10: present
//! (ID)`. The same walk fills it for `show` (present or missing), a dry
//! run (present or would be made) and `apply` (present or made).

use std::fmt;

use super::cloud::Mode;

/// Where one thing stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// There already, as wanted.
    Present(String),
    /// Not there: made now (or missing, or to be made in a dry run).
    Made(String),
    /// There, but changed now (or to be changed).
    Changed(String),
    /// Novabmc's, taken away now (or to be taken away).
    Removed(String),
    /// Not looked at, with why.
    Skipped(String),
    /// novabmc's, for nothing the configuration wants now.
    Unwanted,
}

/// One line.
#[derive(Debug, Clone)]
pub struct Line {
    /// The node, or `bmc`, `router`, `images`.
    pub subject: String,
    /// The resource (`network novabmc-bmc-node-1`).
    pub what: String,
    /// Where it stands.
    pub state: State,
}

/// The lines of a run, in order.
#[derive(Debug, Clone)]
pub struct Report {
    mode: Mode,
    /// The lines.
    pub lines: Vec<Line>,
}

impl Report {
    /// An empty report for a run in `mode`.
    pub fn new(mode: Mode) -> Report {
        Report {
            mode,
            lines: Vec::new(),
        }
    }

    fn push(&mut self, subject: &str, what: impl Into<String>, state: State) {
        self.lines.push(Line {
            subject: subject.to_string(),
            what: what.into(),
            state,
        });
    }

    /// Found as wanted.
    pub fn present(&mut self, subject: &str, what: impl Into<String>, detail: impl Into<String>) {
        self.push(subject, what, State::Present(detail.into()));
    }

    /// Made (or to be made).
    pub fn made(&mut self, subject: &str, what: impl Into<String>, detail: impl Into<String>) {
        self.push(subject, what, State::Made(detail.into()));
    }

    /// Changed (or to be changed).
    pub fn changed(&mut self, subject: &str, what: impl Into<String>, detail: impl Into<String>) {
        self.push(subject, what, State::Changed(detail.into()));
    }

    /// Taken away (or to be taken away).
    pub fn removed(&mut self, subject: &str, what: impl Into<String>, detail: impl Into<String>) {
        self.push(subject, what, State::Removed(detail.into()));
    }

    /// novabmc's, but no longer wanted.
    pub fn unwanted(&mut self, subject: &str, what: impl Into<String>) {
        self.push(subject, what, State::Unwanted);
    }

    /// Not looked at.
    pub fn skipped(&mut self, subject: &str, what: impl Into<String>, why: impl Into<String>) {
        self.push(subject, what, State::Skipped(why.into()));
    }

    /// Whether anything was (or would be) made or changed.
    pub fn changes(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| {
                matches!(
                    l.state,
                    State::Made(_) | State::Changed(_) | State::Removed(_)
                )
            })
            .count()
    }
}

fn with(word: &str, detail: &str) -> String {
    if detail.is_empty() {
        word.to_string()
    } else {
        format!("{word} ({detail})")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            let state = match (&l.state, self.mode) {
                (State::Present(d), _) => with("present", d),
                (State::Made(d), Mode::Apply) => with("created", d),
                (State::Made(d), Mode::DryRun) => with("would be created", d),
                (State::Made(d), Mode::Show) => with("MISSING", d),
                (State::Changed(d), Mode::Apply) => with("changed", d),
                (State::Changed(d), Mode::DryRun) => with("would be changed", d),
                (State::Changed(d), Mode::Show) => with("DIFFERS", d),
                (State::Removed(d), Mode::Apply) => with("removed", d),
                (State::Removed(d), _) => with("would be removed", d),
                (State::Skipped(why), _) => format!("not checked: {why}"),
                (State::Unwanted, _) => "novabmc's, for no configured node (left in place; \
                                         `novabmc network destroy` removes everything of novabmc's)"
                    .to_string(),
            };
            writeln!(f, "{}: {}: {state}", l.subject, l.what)?;
        }
        Ok(())
    }
}
