//! Server-sent events: bytes in, in pieces of any size; complete events out.

/// An event larger than this is dropped rather than buffered without end.
const MAX_EVENT: usize = 16 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// `message` unless the stream named it.
    pub event: String,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    oversized: bool,
}

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.push_line_bytes(&rest[..newline]);
            rest = &rest[newline + 1..];
            let line = std::mem::take(&mut self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if let Some(event) = self.line_done(&String::from_utf8_lossy(line)) {
                events.push(event);
            }
        }
        self.push_line_bytes(rest);
        events
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) {
        if self.line.len() + bytes.len() + self.data.len() > MAX_EVENT {
            self.oversized = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = SseEvent {
                event: match std::mem::take(&mut self.event) {
                    name if name.is_empty() => "message".to_string(),
                    name => name,
                },
                data: std::mem::take(&mut self.data),
            };
            let complete = self.has_data && !self.oversized;
            self.has_data = false;
            self.oversized = false;
            return complete.then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &str, piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        input
            .as_bytes()
            .chunks(piece)
            .flat_map(|part| parser.feed(part))
            .collect()
    }

    #[test]
    fn events_in_any_pieces() {
        let input = ": comment\r\ndata: {\"type\":\"a\"}\r\n\r\nevent: named\ndata: line 1\ndata:line 2\nid: 7\n\ndata: é\n\nretry: 10\n\n";
        let expected = vec![
            SseEvent {
                event: "message".into(),
                data: "{\"type\":\"a\"}".into(),
            },
            SseEvent {
                event: "named".into(),
                data: "line 1\nline 2".into(),
            },
            SseEvent {
                event: "message".into(),
                data: "é".into(),
            },
        ];
        for piece in 1..input.len() {
            assert_eq!(parse_in_pieces(input, piece), expected, "pieces of {piece}");
        }
    }

    #[test]
    fn an_unfinished_event_waits() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b"data: x\n").is_empty());
        assert_eq!(parser.feed(b"\n").len(), 1);
    }
}
