//! The image a client inserts, at its URL: checked when it is inserted
//! (scheme, an answer within the probe timeout, a 2xx status, the size
//! against the configured maximum, the validators that key the cache), and
//! streamed into Glance when Glance cannot fetch it itself, counting the
//! bytes so a body larger than announced is cut off at the maximum.
//!
//! Fetched directly, never through a proxy from the environment: the BMC
//! reaches the deploy server as the machine it stands for would.

use std::time::Duration;

use futures::{Stream, StreamExt as _};

use crate::backend::virtual_media::MediaError;

/// What the image server said about the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// ETag, else Last-Modified, else none: what makes a cached copy
    /// reusable (without one, every insert fetches again).
    pub validator: Option<String>,
    /// Content-Length, when given.
    pub size: Option<u64>,
}

/// A URL the BMC can fetch: http or https, with a host, no credentials in
/// it (they go in UserName/Password).
pub fn check_url(url: &str) -> Result<reqwest::Url, MediaError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| MediaError::BadImage(format!("Image {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(MediaError::BadImage(format!(
            "Image {url:?}: the {} scheme is not supported (http and https are)",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(MediaError::BadImage(format!("Image {url:?} names no host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(MediaError::BadImage(format!(
            "Image {url:?} carries credentials; give them as UserName and Password"
        )));
    }
    Ok(parsed)
}

fn client(timeout: Duration) -> Result<reqwest::Client, MediaError> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(timeout)
        .build()
        .map_err(|e| MediaError::BadImage(format!("cannot build an HTTP client: {e}")))
}

fn request(
    c: &reqwest::Client,
    url: &reqwest::Url,
    credentials: Option<&(String, String)>,
) -> reqwest::RequestBuilder {
    let r = c.get(url.clone());
    match credentials {
        Some((u, p)) => r.basic_auth(u, Some(p)),
        None => r,
    }
}

/// Asks for the image and reads only the answer's head: the status, the
/// size and the validators. The whole probe takes at most `timeout`.
pub async fn probe(
    url: &reqwest::Url,
    credentials: Option<&(String, String)>,
    timeout: Duration,
    max_size: u64,
) -> Result<Probe, MediaError> {
    let c = client(timeout)?;
    let answer = tokio::time::timeout(timeout, request(&c, url, credentials).send()).await;
    let r = match answer {
        Err(_) => {
            return Err(MediaError::BadImage(format!(
                "Image {url}: no answer within {} s",
                timeout.as_secs()
            )));
        }
        Ok(Err(e)) => {
            return Err(MediaError::BadImage(format!(
                "Image {url} cannot be fetched: {}",
                error_chain(&e)
            )));
        }
        Ok(Ok(r)) => r,
    };
    let status = r.status();
    if !status.is_success() {
        return Err(MediaError::BadImage(format!(
            "Image {url}: the server answered {status}"
        )));
    }
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let size = r.content_length();
    if let Some(s) = size
        && s > max_size
    {
        return Err(MediaError::BadImage(format!(
            "Image {url} is {s} bytes, more than the {max_size} allowed (backend.virtual_media.max_size_mib)"
        )));
    }
    let validator = header("etag")
        .map(|e| format!("etag {e}"))
        .or_else(|| header("last-modified").map(|m| format!("modified {m}")));
    Ok(Probe { validator, size })
}

/// Why a download stopped.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server refused or the transfer broke.
    #[error("{0}")]
    Transfer(String),
    /// More bytes than the maximum.
    #[error("the image is larger than the {0} bytes allowed (backend.virtual_media.max_size_mib)")]
    TooLarge(u64),
}

/// The image's bytes as a stream that ends in an error past `max_size`
/// bytes, for Glance's upload. The connection is bounded by `timeout`;
/// the transfer by the caller's import timeout.
pub async fn fetch(
    url: &reqwest::Url,
    credentials: Option<&(String, String)>,
    timeout: Duration,
    max_size: u64,
) -> Result<impl Stream<Item = Result<bytes::Bytes, FetchError>> + Send + 'static, FetchError> {
    let c = client(timeout).map_err(|e| FetchError::Transfer(e.to_string()))?;
    let r = tokio::time::timeout(timeout, request(&c, url, credentials).send())
        .await
        .map_err(|_| FetchError::Transfer(format!("no answer within {} s", timeout.as_secs())))?
        .map_err(|e| FetchError::Transfer(error_chain(&e)))?;
    if !r.status().is_success() {
        return Err(FetchError::Transfer(format!(
            "the server answered {}",
            r.status()
        )));
    }
    let mut seen = 0u64;
    Ok(r.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(|e| FetchError::Transfer(error_chain(&e)))?;
        seen += chunk.len() as u64;
        if seen > max_size {
            return Err(FetchError::TooLarge(max_size));
        }
        Ok(chunk)
    }))
}

/// An error with its causes, which is where reqwest says what happened.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_pass() {
        assert!(check_url("http://10.0.0.1:8080/a.iso").is_ok());
        assert!(check_url("https://h/a.iso").is_ok());
        for bad in [
            "ftp://h/a.iso",
            "nfs://h/a.iso",
            "file:///etc/passwd",
            "not a url",
            "http://u:p@h/a.iso",
        ] {
            assert!(
                matches!(check_url(bad), Err(MediaError::BadImage(_))),
                "{bad}"
            );
        }
    }
}
