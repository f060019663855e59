//! One SOL bridge task: the machine's console opened through the backend,
//! joined to the SOL stream both ways until SOL is deactivated.
//!
//! - Websocket (Nova's serial console): binary frames both ways (text
//!   frames are read too), opened as [`super::websocket`] says (`wss://`
//!   verified as the cloud's API is, `ws://` only where allowed). When it
//!   drops, a fresh URL is asked for and the websocket opened again, with
//!   a growing pause (at most [`MAX_BACKOFF`]); what is typed meanwhile is
//!   kept, up to [`MAX_PENDING`], and sent first.
//! - Stream (the simulated backend's shell): the same, over a local pipe.
//! - No serial console (the cloud refused one, or its websocket cannot be
//!   opened, the first time): the console log is polled every
//!   [`LOG_POLL`] and only what is new is shown, read-only; this is said
//!   once in the console and once in the log.
//! - A console websocket refused (a `ws://` URL where plain consoles are
//!   not allowed, a certificate the cloud's trust does not verify): asking
//!   again cannot help, so the console log is shown at once, and the
//!   refusal is said in the console and logged as an error naming the
//!   node, the URL's scheme and host, and why.
//! - Bounded both ways: typed input arrives on a channel of
//!   [`INPUT_CHUNKS`] chunks and is taken only while fewer than
//!   [`MAX_PENDING`] bytes wait for the console, so a console that stops
//!   reading pushes back to the SOL engine, whose ACKs then accept only
//!   what fits; a write to the console gives up after [`SEND_TIMEOUT`]
//!   (the console is then opened again), and deactivation ends the bridge
//!   even in the middle of a write.
//! - A reload that replaces the backend ([`Binding::move_consoles`]): the
//!   console is closed and opened again through the new backend at once,
//!   so nothing of the old backend (its cloud client, its state directory)
//!   is kept alive by an open SOL session.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::log::LogFollower;
use super::websocket::{self, OpenError, Socket, WebSocketPolicy};
use crate::backend::BackendError;
use crate::backend::Binding;
use crate::backend::serial_console::{ConsoleAccess, ConsoleError, ConsoleSource};

/// Bytes typed while the console is away (or not reading), at most.
pub const MAX_PENDING: usize = 64 * 1024;
/// Chunks of typed input in flight from a node's task to its bridge.
pub const INPUT_CHUNKS: usize = 16;
/// How long one write to the console may take before the bridge gives
/// up on that connection.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the console log is read in the read-only fallback.
pub const LOG_POLL: Duration = Duration::from_secs(2);
/// Lines of console log asked for each time.
pub const LOG_LINES: u32 = 100;
/// "No serial console" answers after a first connection before the bridge
/// falls back to the console log.
const UNSUPPORTED_AFTER_CONNECTED: u32 = 3;
/// How long a websocket may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection ended.
enum Ended {
    /// SOL was deactivated (or the daemon stops).
    Stopped,
    /// The console went away; try again.
    Dropped(String),
    /// The console was refused (and logged so): asking again cannot help.
    Refused(String),
    /// The node's backend was replaced: open again through the new one.
    Moved,
}

/// Why a websocket was not opened.
enum Opening {
    /// SOL was deactivated meanwhile.
    Stopped,
    /// Refused by the cloud's rules ([`OpenError::is_refusal`]).
    Refused(OpenError),
    /// Away (unreachable, timed out...): worth another try.
    Failed(String),
}

/// What the console log fallback says.
enum Fallback<'a> {
    /// The cloud has no serial console (or it cannot be reached).
    NoConsole(&'a str),
    /// The console was refused, and the refusal logged.
    Refused(&'a str),
}

/// Completes when the binding's backend is replaced (never, once the
/// binding is gone).
async fn moved(moves: &mut watch::Receiver<u64>) {
    if moves.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A bridge task's inputs and outputs.
#[derive(Debug)]
pub struct Bridge {
    /// The node's name, for the log.
    pub name: String,
    /// Asked again at every (re)connection, so a reload that restarts the
    /// backend is followed.
    pub binding: Arc<Binding>,
    /// Typed on the SOL console ([`INPUT_CHUNKS`] chunks at most).
    pub input: mpsc::Receiver<Vec<u8>>,
    /// Printed by the machine.
    pub output: mpsc::Sender<Vec<u8>>,
    /// Ends the task (SOL deactivated, or the node stopped).
    pub stop: CancellationToken,
}

impl Bridge {
    /// Runs until stopped.
    pub async fn run(mut self) {
        let mut pending: VecDeque<u8> = VecDeque::new();
        let mut connected = false;
        let mut failures: u32 = 0;
        let mut unsupported: u32 = 0;
        let mut moves = self.binding.console_moves();
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            // A move from here on is one this connection has not seen.
            moves.mark_unchanged();
            let (backend, node) = self.binding.get();
            let source = match backend.console(node) {
                Ok(s) => s,
                Err(BackendError::NotReady(why)) => {
                    debug!(node = %self.name, %why, "console not ready; retrying");
                    if self.pause(Duration::from_secs(1), &mut pending).await {
                        return;
                    }
                    continue;
                }
                Err(BackendError::Unavailable(why) | BackendError::NotRecorded(why)) => {
                    warn!(node = %self.name, %why, "SOL activated, but the node has no console");
                    self.say(&format!("[novabmc: no console for this node: {why}]"))
                        .await;
                    if self.idle(&mut moves).await {
                        continue;
                    }
                    return;
                }
            };
            let opened = tokio::select! {
                () = self.stop.cancelled() => return,
                () = moved(&mut moves) => continue,
                o = source.open() => o,
            };
            let ended = match opened {
                Ok(ConsoleAccess::WebSocket { url, policy }) => {
                    match self.websocket(&url, &policy).await {
                        Ok(ws) => {
                            self.connected(&mut connected, &mut failures, &mut unsupported);
                            self.pump_websocket(ws, &mut pending, &mut moves).await
                        }
                        Err(Opening::Stopped) => return,
                        Err(Opening::Refused(e)) => Ended::Refused(self.refused(&url, &e)),
                        Err(Opening::Failed(why)) => Ended::Dropped(why),
                    }
                }
                Ok(ConsoleAccess::Stream(io)) => {
                    self.connected(&mut connected, &mut failures, &mut unsupported);
                    self.pump_stream(io, &mut pending, &mut moves).await
                }
                Err(ConsoleError::Unsupported(why)) => {
                    unsupported += 1;
                    Ended::Dropped(format!("no serial console: {why}"))
                }
                Err(ConsoleError::Failed(why)) => Ended::Dropped(why),
            };
            let why = match ended {
                Ended::Stopped => return,
                Ended::Moved => {
                    info!(node = %self.name, "the node's backend was replaced; opening the console again through the new one");
                    continue;
                }
                Ended::Refused(why) => {
                    if self
                        .read_only(source.as_ref(), Fallback::Refused(&why), &mut moves)
                        .await
                    {
                        connected = false;
                        unsupported = 0;
                        continue;
                    }
                    return;
                }
                Ended::Dropped(why) => why,
            };
            if !connected || unsupported >= UNSUPPORTED_AFTER_CONNECTED {
                if self
                    .read_only(source.as_ref(), Fallback::NoConsole(&why), &mut moves)
                    .await
                {
                    connected = false;
                    unsupported = 0;
                    continue;
                }
                return;
            }
            failures += 1;
            let backoff = Duration::from_millis(100 << failures.min(6)).min(MAX_BACKOFF);
            info!(node = %self.name, %why, retry_in = ?backoff, pending = pending.len(), "serial console lost; reconnecting");
            if self.pause(backoff, &mut pending).await {
                return;
            }
        }
    }

    fn connected(&self, connected: &mut bool, failures: &mut u32, unsupported: &mut u32) {
        if *connected && *failures > 0 {
            info!(node = %self.name, "serial console reconnected");
        } else {
            debug!(node = %self.name, "serial console open");
        }
        *connected = true;
        *failures = 0;
        *unsupported = 0;
    }

    async fn websocket(&self, url: &str, policy: &WebSocketPolicy) -> Result<Socket, Opening> {
        tokio::select! {
            () = self.stop.cancelled() => Err(Opening::Stopped),
            r = tokio::time::timeout(CONNECT_TIMEOUT, websocket::open(url, policy)) => match r {
                Ok(Ok(ws)) => Ok(ws),
                Ok(Err(e)) if e.is_refusal() => Err(Opening::Refused(e)),
                Ok(Err(e)) => Err(Opening::Failed(e.to_string())),
                Err(_) => Err(Opening::Failed(format!(
                    "the console websocket did not open within {CONNECT_TIMEOUT:?}"
                ))),
            },
        }
    }

    /// Logs a refused console (never its URL's path and query, which hold
    /// the console's token); returns what the console shows.
    fn refused(&self, url: &str, e: &OpenError) -> String {
        error!(
            node = %self.name,
            scheme = %websocket::scheme(url),
            console = %websocket::endpoint(url),
            reason = %e,
            "serial console refused; SOL shows the console log, read-only"
        );
        e.to_string()
    }

    /// Moves what was typed into `pending`, keeping at most
    /// [`MAX_PENDING`] bytes (the newest are the ones dropped, so what is
    /// kept is what was typed first, in order).
    fn take_typed(&self, bytes: Vec<u8>, pending: &mut VecDeque<u8>) {
        let room = MAX_PENDING.saturating_sub(pending.len());
        if bytes.len() > room {
            warn!(node = %self.name, dropped = bytes.len() - room, "typed while the console was away: more than the bound; the rest is dropped");
        }
        pending.extend(bytes.into_iter().take(room));
    }

    /// Waits `d`, keeping what is typed (up to the bound); true if
    /// stopped.
    async fn pause(&mut self, d: Duration, pending: &mut VecDeque<u8>) -> bool {
        let sleep = tokio::time::sleep(d);
        tokio::pin!(sleep);
        loop {
            let room = pending.len() < MAX_PENDING;
            tokio::select! {
                () = self.stop.cancelled() => return true,
                () = &mut sleep => return false,
                b = self.input.recv(), if room => match b {
                    Some(b) => self.take_typed(b, pending),
                    None => return true,
                },
            }
        }
    }

    /// Sends machine output to SOL; false if the node's side has gone.
    async fn emit(&self, bytes: Vec<u8>) -> bool {
        tokio::select! {
            () = self.stop.cancelled() => false,
            r = self.output.send(bytes) => r.is_ok(),
        }
    }

    async fn say(&self, notice: &str) {
        self.emit(format!("\r\n{notice}\r\n").into_bytes()).await;
    }

    async fn pump_websocket(
        &mut self,
        mut ws: Socket,
        pending: &mut VecDeque<u8>,
        moves: &mut watch::Receiver<u64>,
    ) -> Ended {
        loop {
            if !pending.is_empty() {
                let chunk: Vec<u8> = pending.iter().copied().collect();
                let sent = tokio::select! {
                    () = self.stop.cancelled() => return Ended::Stopped,
                    () = moved(moves) => return Ended::Moved,
                    r = tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Binary(chunk.into()))) => r,
                };
                match sent {
                    Ok(Ok(())) => pending.clear(),
                    // Kept: it goes again on the next websocket.
                    Ok(Err(e)) => return Ended::Dropped(format!("console websocket: {e}")),
                    Err(_) => {
                        return Ended::Dropped(format!(
                            "the console took no input for {SEND_TIMEOUT:?}"
                        ));
                    }
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => {
                    let _ = ws.close(None).await;
                    return Ended::Stopped;
                }
                () = moved(moves) => {
                    let _ = ws.close(None).await;
                    return Ended::Moved;
                }
                b = self.input.recv(), if pending.len() < MAX_PENDING => match b {
                    Some(b) => self.take_typed(b, pending),
                    None => {
                        let _ = ws.close(None).await;
                        return Ended::Stopped;
                    }
                },
                m = ws.next() => match m {
                    Some(Ok(Message::Binary(b))) => {
                        if !self.emit(b.to_vec()).await {
                            return Ended::Stopped;
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        if !self.emit(t.as_bytes().to_vec()).await {
                            return Ended::Stopped;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        return Ended::Dropped("the console websocket was closed".into());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Ended::Dropped(format!("console websocket: {e}")),
                },
            }
        }
    }

    async fn pump_stream(
        &mut self,
        mut io: DuplexStream,
        pending: &mut VecDeque<u8>,
        moves: &mut watch::Receiver<u64>,
    ) -> Ended {
        let mut buf = vec![0u8; 4096];
        loop {
            if !pending.is_empty() {
                let chunk: Vec<u8> = pending.iter().copied().collect();
                let sent = tokio::select! {
                    () = self.stop.cancelled() => return Ended::Stopped,
                    () = moved(moves) => return Ended::Moved,
                    r = tokio::time::timeout(SEND_TIMEOUT, io.write_all(&chunk)) => r,
                };
                match sent {
                    Ok(Ok(())) => pending.clear(),
                    Ok(Err(_)) => return Ended::Dropped("the console stream closed".into()),
                    Err(_) => {
                        return Ended::Dropped(format!(
                            "the console took no input for {SEND_TIMEOUT:?}"
                        ));
                    }
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return Ended::Stopped,
                () = moved(moves) => return Ended::Moved,
                b = self.input.recv(), if pending.len() < MAX_PENDING => match b {
                    Some(b) => self.take_typed(b, pending),
                    None => return Ended::Stopped,
                },
                r = io.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Ended::Dropped("the console stream closed".into()),
                    Ok(n) => {
                        if !self.emit(buf[..n].to_vec()).await {
                            return Ended::Stopped;
                        }
                    }
                },
            }
        }
    }

    /// The read-only fallback: the console log, polled, new text only.
    /// True when it ended because the node's backend was replaced.
    async fn read_only(
        &mut self,
        source: &dyn ConsoleSource,
        fallback: Fallback<'_>,
        moves: &mut watch::Receiver<u64>,
    ) -> bool {
        match fallback {
            Fallback::NoConsole(why) => {
                warn!(node = %self.name, reason = %why, "no serial console; SOL shows the console log, read-only");
                self.say(
                    "[novabmc: this server has no serial console here; showing its console log, read-only]",
                )
                .await;
            }
            Fallback::Refused(why) => {
                self.say(&format!(
                    "[novabmc: the serial console was refused: {why}; showing the console log, read-only]"
                ))
                .await;
            }
        }
        let mut follower = LogFollower::default();
        let mut tick = tokio::time::interval(LOG_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return false,
                () = moved(moves) => return true,
                b = self.input.recv() => if b.is_none() { return false },
                _ = tick.tick() => {
                    let read = tokio::select! {
                        () = self.stop.cancelled() => return false,
                        r = source.log(LOG_LINES) => r,
                    };
                    match read {
                        Ok(tail) => {
                            failing = false;
                            let text = follower.new_text(&tail);
                            if !text.is_empty() && !self.emit(text.into_bytes()).await {
                                return false;
                            }
                        }
                        Err(e) => {
                            if !failing {
                                warn!(node = %self.name, error = %e, "cannot read the console log");
                            }
                            failing = true;
                        }
                    }
                }
            }
        }
    }

    /// Nothing to show: waits for deactivation, discarding what is typed.
    /// True when it ended because the node's backend was replaced.
    async fn idle(&mut self, moves: &mut watch::Receiver<u64>) -> bool {
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return false,
                () = moved(moves) => return true,
                b = self.input.recv() => if b.is_none() { return false },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::serial_console::{ConsoleFuture, ConsoleSource};
    use crate::backend::{Backend, NodeId};
    use novabmc_proto::{BootOptions, BootParameterWrite, ChassisControl, ChassisState};
    use std::sync::Mutex;

    /// A console that takes a few bytes and then stops reading.
    struct Stalled(Mutex<Option<DuplexStream>>);

    impl ConsoleSource for Stalled {
        fn open(&self) -> ConsoleFuture<'_, ConsoleAccess> {
            let (ours, theirs) = tokio::io::duplex(64);
            // Kept open, never read.
            *self.0.lock().expect("lock") = Some(theirs);
            Box::pin(async move { Ok(ConsoleAccess::Stream(ours)) })
        }
        fn log(&self, _: u32) -> ConsoleFuture<'_, String> {
            Box::pin(async { Ok(String::new()) })
        }
    }

    struct OneConsole(Arc<Stalled>);

    impl Backend for OneConsole {
        fn chassis_status(&self, _: NodeId) -> Result<ChassisState, BackendError> {
            Err(BackendError::Unavailable("test".into()))
        }
        fn chassis_control(&self, _: NodeId, _: ChassisControl) -> Result<(), BackendError> {
            Err(BackendError::Unavailable("test".into()))
        }
        fn boot_options(&self, _: NodeId) -> Result<BootOptions, BackendError> {
            Err(BackendError::Unavailable("test".into()))
        }
        fn update_boot(
            &self,
            _: NodeId,
            _: &dyn Fn(&BootOptions) -> BootParameterWrite,
            _: bool,
        ) -> Result<BootOptions, BackendError> {
            Err(BackendError::Unavailable("test".into()))
        }
        fn system_guid(&self, _: NodeId) -> Result<[u8; 16], BackendError> {
            Err(BackendError::Unavailable("test".into()))
        }
        fn console(&self, _: NodeId) -> Result<Arc<dyn ConsoleSource>, BackendError> {
            Ok(self.0.clone())
        }
    }

    /// The console stops reading: the bridge takes no more than its bound
    /// of what is typed (the rest waits in the channel, and so in the
    /// engine, whose SOL ACKs accept only what fits), and a deactivation
    /// ends it at once although a write is stuck.
    #[tokio::test]
    async fn a_console_that_stops_reading_bounds_input_and_deactivation_ends_the_bridge() {
        let binding = crate::backend::Binding::new(
            Arc::new(OneConsole(Arc::new(Stalled(Mutex::new(None))))),
            0,
        );
        let (input, input_rx) = mpsc::channel(INPUT_CHUNKS);
        let (output, _output_rx) = mpsc::channel(4);
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            Bridge {
                name: "n".into(),
                binding,
                input: input_rx,
                output,
                stop: stop.clone(),
            }
            .run(),
        );
        // Far more than the bridge keeps: the channel fills and pushes
        // back instead of growing.
        let mut sent = 0usize;
        let chunk = vec![b'x'; 1024];
        while sent < 4 * MAX_PENDING {
            match tokio::time::timeout(Duration::from_millis(200), input.send(chunk.clone())).await
            {
                Ok(Ok(())) => sent += chunk.len(),
                _ => break,
            }
        }
        assert!(
            sent <= MAX_PENDING + (INPUT_CHUNKS + 2) * chunk.len(),
            "{sent} bytes taken from a console that reads nothing"
        );
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the bridge ends at deactivation")
            .expect("join");
    }
}
