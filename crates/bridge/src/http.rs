//! Just enough HTTP/1.1 for the local provider's server and the OpenCode client: one request
//! per connection (`Connection: close`), bodies by `Content-Length`, chunked responses
//! (OpenCode's event stream) and bodies that end with the connection.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Request and response heads larger than this are refused.
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Without the query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection before sending a request.
    Closed,
    TooLarge,
    Malformed(String),
    Io(std::io::Error),
}

/// Reads until the head is complete; returns its length and the bytes read so far.
async fn read_head<R: AsyncRead + Unpin>(
    stream: &mut R,
    is_complete: impl Fn(&[u8]) -> Result<Option<usize>, String>,
) -> Result<(usize, Vec<u8>), ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(ReadError::Io)?;
        if n == 0 {
            return Err(if buf.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Malformed("the connection ended inside the head".into())
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(len) = is_complete(&buf).map_err(ReadError::Malformed)? {
            return Ok((len, buf));
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::TooLarge);
        }
    }
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect()
}

fn content_length(headers: &[(String, String)]) -> Result<Option<usize>, String> {
    match header(headers, "content-length") {
        None => Ok(None),
        Some(value) => value
            .parse::<usize>()
            .map(Some)
            .map_err(|_| format!("bad Content-Length {value:?}")),
    }
}

/// Reads one request whose body is at most `max_body` bytes.
pub async fn read_request<R: AsyncRead + Unpin>(
    stream: &mut R,
    max_body: usize,
) -> Result<Request, ReadError> {
    let (head_len, mut buf) = read_head(stream, |buf| {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(buf) {
            Ok(httparse::Status::Complete(len)) => Ok(Some(len)),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    })
    .await?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    parsed
        .parse(&buf[..head_len])
        .map_err(|e| ReadError::Malformed(e.to_string()))?;
    let method = parsed.method.unwrap_or("").to_string();
    let target = parsed.path.unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let headers = owned_headers(parsed.headers);
    if header(&headers, "transfer-encoding").is_some() {
        return Err(ReadError::Malformed(
            "chunked request bodies are not supported; send Content-Length".into(),
        ));
    }
    let length = content_length(&headers)
        .map_err(ReadError::Malformed)?
        .unwrap_or(0);
    if length > max_body {
        return Err(ReadError::TooLarge);
    }
    let mut body = buf.split_off(head_len);
    if body.len() > length {
        body.truncate(length);
    }
    let already = body.len();
    body.resize(length, 0);
    stream
        .read_exact(&mut body[already..])
        .await
        .map_err(ReadError::Io)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A JSON response, then the connection closes.
pub async fn write_json<W: AsyncWrite + Unpin>(
    stream: &mut W,
    status: u16,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

/// `http://host[:port]/path` taken apart; other schemes are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("only http:// URLs are supported: {url:?}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("bad port in {url:?}"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("no host in {url:?}"));
        }
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// The same server, another path.
    pub fn with_path(&self, path: &str) -> HttpUrl {
        HttpUrl {
            path: path.to_string(),
            ..self.clone()
        }
    }

    fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// How a response body is delimited.
#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// A response whose body is read as it arrives.
pub struct BodyStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
    framing: Framing,
    /// Body bytes that arrived with the head.
    pending: Vec<u8>,
    done: bool,
}

impl BodyStream {
    /// The next piece of the body, `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            if self.done {
                return Ok(None);
            }
            let raw = if self.pending.is_empty() {
                let mut chunk = vec![0u8; 8192];
                let n = self
                    .stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| e.to_string())?;
                chunk.truncate(n);
                chunk
            } else {
                std::mem::take(&mut self.pending)
            };
            if raw.is_empty() {
                self.done = true;
                return match &self.framing {
                    Framing::UntilClose => Ok(None),
                    Framing::Length(0) => Ok(None),
                    _ => Err("the connection ended inside the body".into()),
                };
            }
            let out = match &mut self.framing {
                Framing::UntilClose => raw,
                Framing::Length(remaining) => {
                    let take = raw.len().min(*remaining);
                    *remaining -= take;
                    if *remaining == 0 {
                        self.done = true;
                    }
                    raw[..take].to_vec()
                }
                Framing::Chunked(decoder) => {
                    let mut out = Vec::new();
                    decoder.feed(&raw, &mut out)?;
                    if decoder.is_done() {
                        self.done = true;
                    }
                    out
                }
            };
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }

    pub async fn read_all(mut self, limit: usize) -> Result<Response, String> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() > limit {
                return Err(format!("response body over {limit} bytes"));
            }
        }
        Ok(Response {
            status: self.status,
            headers: self.headers,
            body,
        })
    }
}

/// Sends a request and reads the response head; the body is left to the caller.
pub async fn send(
    method: &str,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<BodyStream, String> {
    let attempt = async {
        let mut stream =
            TcpStream::connect((url.host.trim_matches(|c| c == '[' || c == ']'), url.port))
                .await
                .map_err(|e| format!("cannot connect to {}:{}: {e}", url.host, url.port))?;
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            url.path,
            url.host_header()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        } else if matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str("Content-Length: 0\r\n");
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        // A server may answer (413, say) and stop reading before the body is all sent; its
        // answer is still what counts.
        let write_error = match body {
            Some(body) => stream.write_all(body).await.err(),
            None => None,
        };
        let head = read_head(&mut stream, |buf| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::Response::new(&mut headers).parse(buf) {
                Ok(httparse::Status::Complete(len)) => Ok(Some(len)),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        let (head_len, mut buf) = match (head, write_error) {
            (Ok(head), _) => head,
            (Err(_), Some(e)) => return Err(format!("cannot send the request: {e}")),
            (Err(e), None) => return Err(format!("bad response: {e:?}")),
        };
        let mut parsed_headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut parsed_headers);
        parsed.parse(&buf[..head_len]).map_err(|e| e.to_string())?;
        let status = parsed.code.unwrap_or(0);
        let headers = owned_headers(parsed.headers);
        let chunked = header(&headers, "transfer-encoding")
            .map(|v| v.to_ascii_lowercase().contains("chunked"))
            .unwrap_or(false);
        let framing = if method == "HEAD" || status == 204 || status == 304 {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked(ChunkedDecoder::default())
        } else {
            match content_length(&headers)? {
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            }
        };
        let pending = buf.split_off(head_len);
        let done = matches!(framing, Framing::Length(0));
        Ok(BodyStream {
            status,
            headers,
            stream,
            framing,
            pending,
            done,
        })
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no response within {timeout:?}"))?
}

/// A request whose whole response is wanted (at most 4 MiB), within `timeout`.
pub async fn request(
    method: &str,
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, String> {
    tokio::time::timeout(timeout, async {
        send(method, url, headers, body, timeout)
            .await?
            .read_all(4 * 1024 * 1024)
            .await
    })
    .await
    .map_err(|_| format!("no response within {timeout:?}"))?
}

/// Decodes `Transfer-Encoding: chunked`, fed in pieces of any size.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
    Done,
}

/// Size lines and trailers longer than this mean the stream is not chunked HTTP.
const MAX_CHUNK_LINE: usize = 4096;

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Done => return Ok(()),
                ChunkState::Data(remaining) => {
                    let take = remaining.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = if take == remaining {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(remaining - take)
                    };
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailers => {
                    let Some(newline) = input.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > MAX_CHUNK_LINE {
                            return Err("chunk line too long".into());
                        }
                        return Ok(());
                    };
                    self.line.extend_from_slice(&input[..newline]);
                    input = &input[newline + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    self.state = match self.state {
                        ChunkState::Size => {
                            let text = String::from_utf8_lossy(line);
                            let size_text = text.split(';').next().unwrap_or("").trim();
                            let size = usize::from_str_radix(size_text, 16)
                                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
                            if size == 0 {
                                ChunkState::Trailers
                            } else {
                                ChunkState::Data(size)
                            }
                        }
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => return Err("missing CRLF after a chunk".into()),
                        _ if line.is_empty() => ChunkState::Done,
                        _ => ChunkState::Trailers,
                    };
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> (Vec<u8>, bool) {
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        for part in input.chunks(piece) {
            decoder.feed(part, &mut out).unwrap();
        }
        (out, decoder.is_done())
    }

    #[test]
    fn chunked_bodies_in_any_pieces() {
        let input = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for piece in 1..input.len() {
            assert_eq!(
                decode_in_pieces(input, piece),
                (b"hello, world".to_vec(), true),
                "pieces of {piece}"
            );
        }
        let (out, done) = decode_in_pieces(b"3\r\nabc\r\n", 4);
        assert_eq!((out.as_slice(), done), (b"abc".as_slice(), false));
        let mut decoder = ChunkedDecoder::default();
        assert!(decoder.feed(b"zz\r\n", &mut Vec::new()).is_err());
        let mut decoder = ChunkedDecoder::default();
        assert!(decoder.feed(b"1\r\nabc\r\n", &mut Vec::new()).is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1:4096/event"),
            Ok(HttpUrl {
                host: "127.0.0.1".into(),
                port: 4096,
                path: "/event".into()
            })
        );
        assert_eq!(
            HttpUrl::parse("http://localhost").map(|u| (u.port, u.path)),
            Ok((80, "/".into()))
        );
        assert_eq!(
            HttpUrl::parse("http://[::1]:8080/x").map(|u| (u.host, u.port)),
            Ok(("[::1]".into(), 8080))
        );
        assert!(HttpUrl::parse("https://x").is_err());
        assert!(HttpUrl::parse("http://:80").is_err());
        assert!(HttpUrl::parse("http://h:port").is_err());
    }

    #[test]
    fn server_and_client_round_trip() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let request = read_request(&mut socket, 1024).await.unwrap();
                assert_eq!(request.method, "POST");
                assert_eq!(request.path, "/things");
                assert_eq!(request.header("x-test"), Some("1"));
                write_json(&mut socket, 201, &String::from_utf8_lossy(&request.body))
                    .await
                    .unwrap();
            });
            let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/things?a=b")).unwrap();
            let response = request(
                "POST",
                &url,
                &[("X-Test", "1")],
                Some(b"{\"a\":1}"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(response.status, 201);
            assert_eq!(response.body, b"{\"a\":1}");
            server.await.unwrap();
        });
    }

    #[test]
    fn oversized_bodies_are_refused_before_reading_them() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut input: &[u8] = b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n";
            assert!(matches!(
                read_request(&mut input, 1000).await,
                Err(ReadError::TooLarge)
            ));
            let mut input: &[u8] = b"";
            assert!(matches!(
                read_request(&mut input, 1000).await,
                Err(ReadError::Closed)
            ));
            let mut input: &[u8] = b"NOT HTTP\r\n\r\n";
            assert!(matches!(
                read_request(&mut input, 1000).await,
                Err(ReadError::Malformed(_))
            ));
        });
    }
}
