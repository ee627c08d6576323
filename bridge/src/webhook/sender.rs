//! One HTTP attempt of a delivery, and what its outcome means for retrying.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use admin_api::model::{UrlPolicy, Webhook};
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};

use super::reply::Reply;
use super::sign::signature_header;
use crate::outgoing::{self, Denied};

/// Longest `Retry-After` honoured; a larger one is clamped to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Largest response body read (a reply is small; more is cut).
const MAX_REPLY_BYTES: usize = 1024 * 1024;
/// Parsed webhook URLs kept; past this the cache starts over (old URLs of changed webhooks
/// would otherwise stay).
const MAX_PARSED_URLS: usize = 4096;

/// A message to one webhook: its stable id and the serialized body.
#[derive(Debug, Clone)]
pub struct Message {
    /// `msg_…`; the same on every attempt.
    pub id: String,
    /// Event name, for logs and the delivery record.
    pub event: String,
    /// The JSON body, serialized once.
    pub body: Bytes,
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// A 2xx answer with its body.
    Success {
        /// Status code.
        status: u16,
        /// Response body (at most 1 MiB).
        body: Bytes,
    },
    /// Worth another try: network error, timeout, 408, 429, 5xx.
    Retryable {
        /// Status code, when one came back.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// The server's `Retry-After`, clamped.
        retry_after: Option<Duration>,
    },
    /// Not worth another try: other 4xx (and 3xx: redirects are never followed).
    Final {
        /// Status code.
        status: u16,
        /// What went wrong.
        error: String,
    },
}

/// Sends attempts over one shared HTTP client (connection pool, keep-alive).
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    policy: UrlPolicy,
    /// Webhook URLs parsed once rather than per request (twice, with reqwest's own parse),
    /// by their text, so a changed URL is parsed anew.
    urls: Arc<Mutex<HashMap<String, url::Url>>>,
}

impl Sender {
    /// A sender that never follows redirects and sends only where `policy` allows.
    pub fn new(policy: UrlPolicy) -> Self {
        let http = outgoing::client(policy)
            .pool_max_idle_per_host(64)
            .build()
            .expect("HTTP client with the process-wide TLS provider");
        Self {
            http,
            policy,
            urls: Arc::default(),
        }
    }

    /// `text` parsed, from the cache when it was parsed before.
    fn parsed(&self, text: &str) -> Result<url::Url, String> {
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(url) = urls.get(text) {
            return Ok(url.clone());
        }
        let url = url::Url::parse(text).map_err(|e| format!("invalid URL: {e}"))?;
        if urls.len() >= MAX_PARSED_URLS {
            urls.clear();
        }
        urls.insert(text.to_owned(), url.clone());
        Ok(url)
    }

    /// POSTs `message` to `hook`, signed now, within the hook's timeout.
    pub async fn attempt(&self, hook: &Webhook, message: &Message) -> Attempt {
        let url = match self.parsed(&hook.url) {
            Ok(url) => url,
            Err(error) => return Attempt::Final { status: 0, error },
        };
        if let Err(error) = outgoing::check_literal(self.policy, &url) {
            return Attempt::Final { status: 0, error };
        }
        let now = chrono::Utc::now();
        let timestamp = now.timestamp();
        let headers = match headers(hook, message, timestamp, now.timestamp_millis()) {
            Ok(headers) => headers,
            Err(error) => return Attempt::Final { status: 0, error },
        };
        let started = Instant::now();
        let result = self
            .http
            .post(url)
            .headers(headers)
            .timeout(Duration::from_millis(hook.timeout_ms))
            .body(message.body.clone())
            .send()
            .await;
        let outcome = match result {
            Ok(resp) => classify(resp, hook.reply).await,
            // Resolving again will not help: the policy refuses every address of the host.
            Err(err) if Denied::find(&err).is_some() => Attempt::Final {
                status: 0,
                error: Denied::find(&err)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            },
            Err(err) => Attempt::Retryable {
                status: None,
                error: describe(err),
                retry_after: None,
            },
        };
        record(&outcome, started.elapsed());
        outcome
    }
}

fn headers(
    hook: &Webhook,
    message: &Message,
    timestamp: i64,
    now_ms: i64,
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in &hook.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
        headers.insert(name, value);
    }
    let signature = signature_header(
        &hook.signing_secrets(now_ms),
        &message.id,
        timestamp,
        &message.body,
    );
    let pairs = [
        (CONTENT_TYPE, "application/json".to_owned()),
        (
            USER_AGENT,
            concat!("bridge/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
        (HeaderName::from_static("webhook-id"), message.id.clone()),
        (
            HeaderName::from_static("webhook-timestamp"),
            timestamp.to_string(),
        ),
        (HeaderName::from_static("webhook-signature"), signature),
    ];
    for (name, value) in pairs {
        headers.insert(
            name,
            HeaderValue::from_str(&value).map_err(|e| e.to_string())?,
        );
    }
    Ok(headers)
}

/// What an answer means. Only a reply webhook's 2xx body is read: it must arrive whole, within
/// 1 MiB, and be empty or a JSON object, or the attempt fails (an unreadable reply must not look
/// like a delivered one that asked for nothing).
async fn classify(resp: reqwest::Response, reply: bool) -> Attempt {
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        if !reply {
            return Attempt::Success {
                status,
                body: Bytes::new(),
            };
        }
        return match read_limited(resp).await {
            Ok(body) => match Reply::parse(&body) {
                Ok(_) => Attempt::Success { status, body },
                Err(error) => Attempt::Final {
                    status,
                    error: error.to_string(),
                },
            },
            Err(BodyError::TooLarge) => Attempt::Final {
                status,
                error: format!("reply body larger than {MAX_REPLY_BYTES} bytes"),
            },
            Err(BodyError::Unread(error)) => Attempt::Retryable {
                status: Some(status),
                error: format!("reply body: {error}"),
                retry_after: None,
            },
        };
    }
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let error = format!("HTTP {status}");
    if status == 408 || status == 429 || status >= 500 {
        Attempt::Retryable {
            status: Some(status),
            error,
            retry_after,
        }
    } else {
        Attempt::Final { status, error }
    }
}

/// Why a reply body could not be used.
enum BodyError {
    /// Over [`MAX_REPLY_BYTES`].
    TooLarge,
    /// Cut off or not finished within the webhook's timeout.
    Unread(String),
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Bytes, BodyError> {
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_REPLY_BYTES {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(buf)),
            Err(err) => return Err(BodyError::Unread(describe(err))),
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date, clamped to [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        let ms = (at.timestamp_millis() - chrono::Utc::now().timestamp_millis()).max(0);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// What went wrong, without the URL (reqwest's message names it, credentials and query
/// included, and this text is logged and stored in the delivery's history).
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        format!("connection failed: {err}")
    } else {
        err.to_string()
    }
}

/// `url` as logs show it: no credentials and no query, either of which may carry a secret.
pub fn loggable_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            if parsed.query().is_some() {
                parsed.set_query(Some("redacted"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparseable URL)".into(),
    }
}

fn record(outcome: &Attempt, elapsed: Duration) {
    let label = match outcome {
        Attempt::Success { .. } => "success",
        Attempt::Retryable { .. } => "retryable_error",
        Attempt::Final { .. } => "final_error",
    };
    metrics::counter!(crate::metrics::WEBHOOK_ATTEMPTS, "outcome" => label).increment(1);
    metrics::histogram!(crate::metrics::WEBHOOK_LATENCY).record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_carry_no_credentials_or_query() {
        assert_eq!(
            loggable_url("https://user:pass@api.example.com:8443/hooks/x?token=s3cret#frag"),
            "https://api.example.com:8443/hooks/x?redacted#frag"
        );
        assert_eq!(loggable_url("http://127.0.0.1/h"), "http://127.0.0.1/h");
        assert_eq!(loggable_url("not a url"), "(unparseable URL)");
    }

    #[test]
    fn urls_are_parsed_once_by_their_text_within_a_bound() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sender = Sender::new(UrlPolicy::default());
        let a = sender.parsed("http://127.0.0.1:9/a").unwrap();
        assert_eq!(a.path(), "/a");
        assert_eq!(sender.parsed("http://127.0.0.1:9/b").unwrap().path(), "/b");
        assert_eq!(sender.parsed("http://127.0.0.1:9/a").unwrap(), a);
        assert!(sender.parsed("not a url").is_err());
        for n in 0..MAX_PARSED_URLS + 10 {
            sender.parsed(&format!("http://127.0.0.1:9/{n}")).unwrap();
        }
        let kept = sender.urls.lock().unwrap().len();
        assert!(kept <= MAX_PARSED_URLS, "{kept}");
    }

    #[test]
    fn retry_after_seconds_dates_and_clamp() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("100000"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
