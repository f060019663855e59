//! Opening a console websocket under the cloud's rules: `wss://` is
//! verified with the same trust as the cloud's API (its `cacert` and the
//! public roots, see [`crate::backend::nova::trust`]); `ws://`, which
//! carries what is typed and the console's one-time token in clear, only
//! where the configuration allows it ([`PLAIN_KEY`]).
//!
//! The `binary` subprotocol is asked, as Nova's websockify-based serial
//! proxy expects.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The configuration key that allows `ws://` consoles.
pub const PLAIN_KEY: &str = "backend.allow_plain_console";

/// An open console websocket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a backend's console websockets may be opened.
#[derive(Clone, Debug)]
pub struct WebSocketPolicy {
    /// The TLS client settings for `wss://`, or why there are none (the
    /// cloud's `cacert` cannot be used; the API calls fail likewise).
    pub tls: Result<Arc<rustls::ClientConfig>, String>,
    /// Whether `ws://` is allowed ([`PLAIN_KEY`]).
    pub allow_plain: bool,
}

/// Why a console websocket was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A `ws://` URL while [`PLAIN_KEY`] is not set.
    #[error(
        "a plain ws:// console would carry keystrokes and the console token in clear; set {PLAIN_KEY} = true to allow it"
    )]
    PlainRefused,
    /// Neither `ws://` nor `wss://`, or not a URL.
    #[error("unusable console URL: {0}")]
    BadUrl(String),
    /// No TLS settings: the cloud's `cacert` cannot be used.
    #[error("no TLS settings for wss:// consoles: {0}")]
    NoTls(String),
    /// The TLS handshake failed: the console's certificate is not trusted
    /// (or does not name its host), or the server speaks no TLS we take.
    #[error(
        "TLS with the console failed: {0} (trusted as for the cloud's API: its cacert and the public roots)"
    )]
    Tls(String),
    /// Anything else (unreachable, the handshake refused, a bad token).
    #[error("cannot open the console websocket: {0}")]
    Failed(String),
}

impl OpenError {
    /// Whether asking again cannot help until the configuration changes:
    /// the console is then refused, not merely away.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, OpenError::Failed(_))
    }
}

/// `scheme://host:port` of a console URL, for the log: never its path
/// and query, which hold the console's token.
pub fn endpoint(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            // Credentials in the authority stay out of the log too.
            let host = authority.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}")
        }
        None => "(not a URL)".into(),
    }
}

/// The scheme of a console URL, lower case (`ws`, `wss`...).
pub fn scheme(url: &str) -> String {
    url.split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Opens the websocket at `url` as `policy` allows.
pub async fn open(url: &str, policy: &WebSocketPolicy) -> Result<Socket, OpenError> {
    let connector = match scheme(url).as_str() {
        "wss" => match &policy.tls {
            Ok(tls) => Connector::Rustls(tls.clone()),
            Err(why) => return Err(OpenError::NoTls(why.clone())),
        },
        "ws" if policy.allow_plain => Connector::Plain,
        "ws" => return Err(OpenError::PlainRefused),
        other => {
            return Err(OpenError::BadUrl(format!(
                "scheme {other:?} of {} (ws or wss expected)",
                endpoint(url)
            )));
        }
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| OpenError::BadUrl(format!("{}: {e}", endpoint(url))))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("binary"));
    match tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
        .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(e) => Err(classify(e)),
    }
}

/// A TLS failure (rustls's error inside the I/O error) is told apart from
/// the rest.
fn classify(e: tokio_tungstenite::tungstenite::Error) -> OpenError {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::UrlError;
    match e {
        Error::Io(io) => {
            match io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => OpenError::Tls(tls.to_string()),
                None => OpenError::Failed(io.to_string()),
            }
        }
        Error::Tls(tls) => OpenError::Tls(tls.to_string()),
        // Its text would hold the URL, token included.
        Error::Url(UrlError::UnableToConnect(_)) => OpenError::Failed("unable to connect".into()),
        Error::Url(url) => OpenError::BadUrl(url.to_string()),
        other => OpenError::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_never_shows_the_token() {
        assert_eq!(
            endpoint("wss://proxy.example:6083/?token=secret"),
            "wss://proxy.example:6083"
        );
        assert_eq!(
            endpoint("ws://u:p@[::1]:6083/serial?token=secret"),
            "ws://[::1]:6083"
        );
        assert_eq!(endpoint("nonsense"), "(not a URL)");
        assert_eq!(scheme("WSS://x/"), "wss");
    }

    #[tokio::test]
    async fn plain_consoles_are_refused_unless_allowed() {
        let policy = WebSocketPolicy {
            tls: Err("none".into()),
            allow_plain: false,
        };
        let e = open("ws://127.0.0.1:9/?token=t", &policy)
            .await
            .expect_err("refused");
        assert!(matches!(e, OpenError::PlainRefused), "{e:?}");
        assert!(e.is_refusal());
        assert!(e.to_string().contains(PLAIN_KEY), "{e}");
        let e = open("wss://127.0.0.1:9/?token=t", &policy)
            .await
            .expect_err("no TLS");
        assert!(matches!(e, OpenError::NoTls(_)), "{e:?}");
        let e = open("http://127.0.0.1:9/", &policy)
            .await
            .expect_err("scheme");
        assert!(matches!(e, OpenError::BadUrl(_)), "{e:?}");
    }
}
