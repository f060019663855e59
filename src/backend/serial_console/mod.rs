//! The machines' serial consoles: how a backend offers a node's console
//! (a websocket to open, Nova's serial console proxy; or a byte stream,
//! the simulated backend's local shell; and the console log for clouds
//! that have no serial console), and the bridge that keeps one open and
//! joined to a front door's byte channels ([`bridge`]). A websocket is
//! opened under the cloud's rules ([`websocket`]): `wss://` verified as
//! the cloud's API is, `ws://` only where the configuration allows it.
//!
//! A backend hands out one [`ConsoleSource`] per node on request
//! ([`crate::backend::Backend::console`]); the bridge opens it each time it
//! (re)connects, so a console URL, which a cloud issues for one
//! connection, is never reused. IPMI's Serial over LAN
//! ([`crate::ipmi::sol`]) is the front door that uses it today.

pub mod bridge;
pub mod log;
pub mod websocket;

use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use novabmc_novasim::shell::LineShell;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// How to reach a console once opened.
#[derive(Debug)]
pub enum ConsoleAccess {
    /// A websocket URL (`ws://` or `wss://`) carrying the console's
    /// bytes, and how the backend allows it to be opened.
    WebSocket {
        /// The URL (its query holds a one-time token: never logged).
        url: String,
        /// The backend's rules for console websockets.
        policy: Arc<websocket::WebSocketPolicy>,
    },
    /// A byte stream to the console, both ways.
    Stream(DuplexStream),
}

/// Why a console could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleError {
    /// The cloud has no serial console for this server (Nova answered
    /// 400, 409 or 501): the console log is what there is.
    #[error("no serial console: {0}")]
    Unsupported(String),
    /// Anything else (the cloud is down, the server not resolved yet).
    #[error("{0}")]
    Failed(String),
}

/// A boxed future of a console call.
pub type ConsoleFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ConsoleError>> + Send + 'a>>;

/// One node's serial console.
pub trait ConsoleSource: Send + Sync + 'static {
    /// Opens the console (for Nova: asks for a fresh serial console URL).
    fn open(&self) -> ConsoleFuture<'_, ConsoleAccess>;

    /// The last `lines` lines of the console log.
    fn log(&self, lines: u32) -> ConsoleFuture<'_, String>;
}

/// The simulated backend's console: a login prompt and a line-echo shell
/// in process, so that `sol activate` has something to talk to.
#[derive(Debug)]
pub struct LocalShell {
    /// The machine's name, shown in the prompts.
    pub name: String,
}

impl ConsoleSource for LocalShell {
    fn open(&self) -> ConsoleFuture<'_, ConsoleAccess> {
        let (ours, theirs) = tokio::io::duplex(4096);
        tokio::spawn(echo_shell(self.name.clone(), theirs));
        Box::pin(async move { Ok(ConsoleAccess::Stream(ours)) })
    }

    fn log(&self, _lines: u32) -> ConsoleFuture<'_, String> {
        let name = self.name.clone();
        Box::pin(async move { Ok(format!("{name} login: ")) })
    }
}

/// Shows `<name> login: `, echoes what is typed, and answers each line
/// after the first with `echo: <line>` and a prompt, until the other end
/// closes.
pub async fn echo_shell(name: String, mut io: DuplexStream) {
    let (mut shell, banner) = LineShell::new(&name);
    if io.write_all(&banner).await.is_err() {
        return;
    }
    let mut buf = [0u8; 1024];
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut out = Vec::new();
        shell.feed(&buf[..n], &mut out);
        if io.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_shell_prompts_and_echoes() {
        let shell = LocalShell {
            name: "node-0".into(),
        };
        let Ok(ConsoleAccess::Stream(mut io)) = shell.open().await else {
            panic!("a stream");
        };
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        io.write_all(b"root\rhello\r").await.expect("write");
        while !String::from_utf8_lossy(&seen).contains("echo: hello") {
            let n = io.read(&mut buf).await.expect("read");
            assert!(n > 0, "shell closed early");
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&seen).starts_with("\r\nnode-0 login: "));
    }
}
