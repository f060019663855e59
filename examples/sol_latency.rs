//! Keystroke round trips over a serial console, for
//! `contrib/bench/sol-latency.sh`: each keystroke is sent alone and timed
//! until its echo comes back, 200 times by default, and the median and
//! 99th percentile printed.
//!
//! Two ways in:
//!
//!     sol_latency ws URL [N]          straight to a serial console websocket
//!     sol_latency sol 'COMMAND' [N]   through `ipmitool ... sol activate`
//!                                     (COMMAND), run in a pseudo-terminal
//!                                     by util-linux script
//!
//! Both log in to the simulator's shell first (a line, then its prompt),
//! so that the keystrokes measured are echoed one by one.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Longest wait for one echo.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    println!(
        "{what}: {} keystrokes, median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Waits until `seen` (fed by `rx`) contains `needle` after `from`.
fn wait_for(
    rx: &mpsc::Receiver<Vec<u8>>,
    seen: &mut Vec<u8>,
    from: usize,
    needle: &[u8],
) -> Result<()> {
    let deadline = Instant::now() + ECHO_TIMEOUT;
    while !seen[from.min(seen.len())..]
        .windows(needle.len())
        .any(|w| w == needle)
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(b) => seen.extend_from_slice(&b),
            Err(_) => bail!(
                "no {:?} within {ECHO_TIMEOUT:?}",
                String::from_utf8_lossy(needle)
            ),
        }
    }
    Ok(())
}

fn keystrokes(
    n: usize,
    send: &mut dyn FnMut(&[u8]) -> Result<()>,
    rx: &mpsc::Receiver<Vec<u8>>,
) -> Result<Vec<Duration>> {
    let mut seen = Vec::new();
    wait_for(rx, &mut seen, 0, b"login: ")?;
    send(b"bench\r")?;
    wait_for(rx, &mut seen, 0, b":~$ ")?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let key = b'a' + (i % 26) as u8;
        let from = seen.len();
        let t = Instant::now();
        send(&[key])?;
        wait_for(rx, &mut seen, from, &[key])?;
        samples.push(t.elapsed());
        if i % 60 == 59 {
            let from = seen.len();
            send(b"\r")?;
            wait_for(rx, &mut seen, from, b":~$ ")?;
        }
    }
    Ok(samples)
}

fn through_sol(command: &str, n: usize) -> Result<()> {
    let mut child = Command::new("script")
        .args(["-q", "-f", "-c", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting script")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(k) = stdout.read(&mut buf) {
            if k == 0 || tx.send(buf[..k].to_vec()).is_err() {
                break;
            }
        }
    });
    let result = keystrokes(
        n,
        &mut |b| {
            stdin.write_all(b)?;
            stdin.flush()?;
            Ok(())
        },
        &rx,
    );
    let _ = stdin.write_all(b"\r~.");
    let _ = stdin.flush();
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    report("through novabmc (ipmitool sol activate)", result?);
    Ok(())
}

fn straight(url: &str, n: usize) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("binary"),
    );
    let (ws, _) = rt.block_on(tokio_tungstenite::connect_async(request))?;
    let (mut sink, mut stream) = ws.split();
    let (tx, rx) = mpsc::channel();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let pump = std::thread::spawn(move || {
        rt.block_on(async move {
            loop {
                tokio::select! {
                    m = stream.next() => match m {
                        Some(Ok(Message::Binary(b))) => { if tx.send(b.to_vec()).is_err() { break } }
                        Some(Ok(Message::Text(t))) => { if tx.send(t.as_bytes().to_vec()).is_err() { break } }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    b = out_rx.recv() => match b {
                        Some(b) => { if sink.send(Message::Binary(b.into())).await.is_err() { break } }
                        None => { let _ = sink.close().await; break }
                    },
                }
            }
        });
    });
    let result = keystrokes(
        n,
        &mut |b| {
            out_tx.send(b.to_vec()).context("websocket gone")?;
            Ok(())
        },
        &rx,
    );
    drop(out_tx);
    let _ = pump.join();
    report("straight to the websocket", result?);
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .get(3)
        .map(|s| s.parse::<usize>())
        .transpose()
        .context("N must be a number")?
        .unwrap_or(200);
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("ws"), Some(url)) => straight(url, n),
        (Some("sol"), Some(command)) => through_sol(command, n),
        _ => {
            eprintln!("usage: sol_latency ws URL [N] | sol 'ipmitool ... sol activate' [N]");
            std::process::exit(2);
        }
    }
}
