//! Opening WebSockets: participants (URL with a token) and the bridge (headers).

use crate::frames;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Sink = SplitSink<Ws, Message>;

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

/// Opens a WebSocket with extra request headers; TCP_NODELAY on.
pub async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Ws, String> {
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("{url}: {e}"))?;
    for (name, value) in headers {
        request.headers_mut().insert(
            http_name(name)?,
            value
                .parse()
                .map_err(|_| format!("bad header value for {name}"))?,
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config()), true)
        .await
        .map_err(|e| format!("connect {}: {e}", redact(url)))?;
    Ok(ws)
}

fn http_name(name: &str) -> Result<tokio_tungstenite::tungstenite::http::HeaderName, String> {
    name.parse().map_err(|_| format!("bad header name {name}"))
}

/// A URL without its query (tokens are not printed).
pub fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Reads frames until `welcome`; returns its `last_seq` and the frames that came before it.
pub async fn await_welcome(ws: &mut Ws, timeout: Duration) -> Result<u64, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, ws.next())
            .await
            .map_err(|_| "no welcome in time".to_string())?;
        match next {
            Some(Ok(Message::Text(text))) => {
                if frames::kind(text.as_bytes()) == Some(b"welcome".as_slice()) {
                    return Ok(frames::u64_field(text.as_bytes(), b"last_seq").unwrap_or(0));
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("closed before welcome: {frame:?}"));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("socket error before welcome: {e}")),
            None => return Err("socket ended before welcome".into()),
        }
    }
}

/// Opens `urls` with at most `parallel` handshakes at once, each up to its `welcome`.
pub async fn join_all(urls: &[String], parallel: usize) -> Result<Vec<Ws>, String> {
    let mut out: Vec<Option<Ws>> = (0..urls.len()).map(|_| None).collect();
    let mut next = 0;
    let mut pending = tokio::task::JoinSet::new();
    while next < urls.len() || !pending.is_empty() {
        while next < urls.len() && pending.len() < parallel {
            let url = urls[next].clone();
            let index = next;
            pending.spawn(async move {
                let mut ws = open(&url, &[]).await?;
                await_welcome(&mut ws, Duration::from_secs(30)).await?;
                Ok::<_, String>((index, ws))
            });
            next += 1;
        }
        if let Some(done) = pending.join_next().await {
            let (index, ws) = done.map_err(|e| e.to_string())??;
            out[index] = Some(ws);
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Queues a text frame without flushing (follow with [`flush`]).
pub async fn feed(sink: &mut Sink, text: String) -> Result<(), String> {
    sink.feed(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}

pub async fn flush(sink: &mut Sink) -> Result<(), String> {
    sink.flush().await.map_err(|e| format!("flush: {e}"))
}

/// Closes every socket politely and does not wait long for the answers.
pub async fn close_all(sinks: Vec<Sink>) {
    let mut closing = tokio::task::JoinSet::new();
    for mut sink in sinks {
        closing.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
        });
    }
    while closing.join_next().await.is_some() {}
}
