//! The line-echo shell behind a simulated serial console: a login prompt,
//! then each line typed answered with `echo: <line>` and a prompt. Shared
//! by the simulator's Nova serial console websocket and the simulated
//! backend's local console (`novabmc demo`), so that a test or a user can
//! type and read back the same way through either. Bytes in, bytes out:
//! the callers own the transport.

/// One console's shell.
#[derive(Debug)]
pub struct LineShell {
    prompt: String,
    logged_in: bool,
    line: Vec<u8>,
    prev: u8,
}

impl LineShell {
    /// A shell for the machine `name`, and the banner to show first.
    pub fn new(name: &str) -> (LineShell, Vec<u8>) {
        let shell = LineShell {
            prompt: format!("{name}:~$ "),
            logged_in: false,
            line: Vec::new(),
            prev: 0,
        };
        (shell, format!("\r\n{name} login: ").into_bytes())
    }

    /// Takes typed bytes and appends what the console shows to `out`: the
    /// echo of each character, and at each line end (CR, LF or CR LF) the
    /// answer and a prompt; the first line is the login name. Backspace
    /// and DEL rub out the last character.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            match b {
                b'\r' | b'\n' => {
                    let lf_of_crlf = b == b'\n' && self.prev == b'\r';
                    self.prev = b;
                    if lf_of_crlf {
                        continue;
                    }
                    out.extend_from_slice(b"\r\n");
                    if self.logged_in {
                        out.extend_from_slice(b"echo: ");
                        out.extend_from_slice(&self.line);
                        out.extend_from_slice(b"\r\n");
                    }
                    self.logged_in = true;
                    self.line.clear();
                    out.extend_from_slice(self.prompt.as_bytes());
                }
                0x7f | 0x08 => {
                    self.prev = b;
                    if self.line.pop().is_some() {
                        out.extend_from_slice(b"\x08 \x08");
                    }
                }
                other => {
                    self.prev = other;
                    self.line.push(other);
                    out.push(other);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_then_lines_are_echoed_whatever_the_line_ends() {
        let (mut shell, banner) = LineShell::new("n");
        assert_eq!(banner, b"\r\nn login: ");
        let mut out = Vec::new();
        shell.feed(b"root\r", &mut out);
        shell.feed(b"\nhi", &mut out);
        shell.feed(b"x\x7f\r\n", &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "root\r\nn:~$ hix\x08 \x08\r\necho: hi\r\nn:~$ "
        );
    }
}
