//! A fake sandbox provider (PROTOCOL.md section 5): enough HTTP/1.1 to answer the
//! coordinator's signed requests. `POST /sandboxes` is answered 201 and handed to the
//! benchmark, which then plays the sandbox's bridge itself. Signatures are not checked.

use protocol::provider::CreateSandbox;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub struct Provider {
    pub created: mpsc::UnboundedReceiver<CreateSandbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(port: u16) -> Result<Provider, String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("provider port {port}: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = serve(stream, tx).await;
            });
        }
    });
    Ok(Provider { created: rx, task })
}

/// Answers requests on one connection until it closes.
async fn serve(
    mut stream: TcpStream,
    tx: mpsc::UnboundedSender<CreateSandbox>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        let mut request_line = head.lines().next().unwrap_or("").split(' ');
        let method = request_line.next().unwrap_or("");
        let path = request_line.next().unwrap_or("");
        let (status, answer) = route(method, path, &body, &tx);
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

fn route(
    method: &str,
    path: &str,
    body: &[u8],
    tx: &mpsc::UnboundedSender<CreateSandbox>,
) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["health"]) => ("200 OK", r#"{"ok":true,"provider":"local","app":"bench"}"#.into()),
        ("POST", ["sandboxes"]) => match serde_json::from_slice::<CreateSandbox>(body) {
            Ok(create) => {
                let answer = serde_json::json!({ "sandbox_id": create.sandbox_id, "provider_id": "bench" });
                let _ = tx.send(create);
                ("201 Created", answer.to_string())
            }
            Err(error) => (
                "400 Bad Request",
                serde_json::json!({ "error": { "code": "invalid_json", "message": error.to_string() } })
                    .to_string(),
            ),
        },
        ("POST", ["sandboxes", _, "snapshot"]) => ("200 OK", r#"{"snapshot_id":"s1"}"#.into()),
        ("DELETE", ["sandboxes", _]) => ("200 OK", "{}".into()),
        _ => ("404 Not Found", r#"{"error":{"code":"not_found","message":"no such route"}}"#.into()),
    }
}
