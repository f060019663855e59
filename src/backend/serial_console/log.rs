//! Following a console log by polling its tail: Nova's
//! `os-getConsoleOutput` gives the last N lines each time, so what is new
//! is what follows the longest overlap between the previous tail's end and
//! the new tail's start (byte-wise, so a prompt left without a newline and
//! then completed is not shown twice).

/// What has been shown of a log so far.
#[derive(Debug, Default)]
pub struct LogFollower {
    last: String,
}

impl LogFollower {
    /// The part of `tail` not shown yet, with line ends as a terminal
    /// wants them (CR LF). All of it when nothing overlaps (the first
    /// poll, or more was written between two polls than a tail holds).
    pub fn new_text(&mut self, tail: &str) -> String {
        let prev = self.last.as_bytes();
        let next = tail.as_bytes();
        let max = prev.len().min(next.len());
        let overlap = (1..=max)
            .rev()
            .find(|&k| prev[prev.len() - k..] == next[..k])
            .unwrap_or(0);
        // The overlap ends on a character boundary of `tail`, since it is
        // also a suffix of `last` and both are valid UTF-8 cut the same way.
        let fresh = tail.get(overlap..).unwrap_or_default();
        self.last = tail.to_string();
        crlf(fresh)
    }
}

/// `\n` as `\r\n`, leaving existing `\r\n` alone.
fn crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    let mut prev = '\0';
    for c in s.chars() {
        if c == '\n' && prev != '\r' {
            out.push('\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_lines_are_shown() {
        let mut f = LogFollower::default();
        assert_eq!(f.new_text("a\nb\n"), "a\r\nb\r\n");
        assert_eq!(f.new_text("a\nb\n"), "");
        assert_eq!(f.new_text("b\nc\n"), "c\r\n", "the tail moved on");
    }

    #[test]
    fn a_completed_prompt_is_not_shown_twice() {
        let mut f = LogFollower::default();
        assert_eq!(f.new_text("boot\nnode login: "), "boot\r\nnode login: ");
        assert_eq!(
            f.new_text("boot\nnode login: root\nPassword: "),
            "root\r\nPassword: "
        );
    }

    #[test]
    fn no_overlap_shows_everything() {
        let mut f = LogFollower::default();
        f.new_text("x\ny\n");
        assert_eq!(f.new_text("p\nq\n"), "p\r\nq\r\n");
    }

    #[test]
    fn multibyte_text_is_cut_on_characters() {
        let mut f = LogFollower::default();
        f.new_text("é\n");
        assert_eq!(f.new_text("é\nü\n"), "ü\r\n");
    }
}
