//! Engine.IO 3 WebSockets: client CONNECT frames rewritten in the byte stream.
//!
//! A v2 client sends `40/chat?token=abc,` to join a namespace with a query; socketioxide would
//! take `/chat?token=abc` for the namespace's name. [`ConnectRewriter`] sits on the read side of
//! the client's connection, below socketioxide's own WebSocket stack: it parses the client's
//! frames as they arrive, passes every frame through untouched except an unfragmented text frame
//! holding such a CONNECT, which it re-encodes without the query (same mask key). The server's
//! frames are not touched at all. So a v2 connection costs one WebSocket stack, like a v4 one.

use bytes::{Buf, BufMut, BytesMut};

use super::strip_connect_query;

/// Largest text frame looked into: a CONNECT with its token is well under it. A larger frame
/// passes through as it is.
pub const MAX_CONNECT_FRAME: usize = 16 * 1024;
/// Text frame opcode.
const TEXT: u8 = 0x1;

/// What is left of the frame being passed through.
#[derive(Debug, Default)]
enum State {
    /// At a frame boundary: the next bytes are a frame header.
    #[default]
    Header,
    /// Inside a frame's payload: this many bytes pass through as they come.
    Payload(u64),
}

/// The read-side filter of one Engine.IO 3 WebSocket.
#[derive(Debug, Default)]
pub struct ConnectRewriter {
    state: State,
    /// Bytes of a header, or of a whole candidate frame, not complete yet.
    partial: BytesMut,
}

/// A client frame's header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    /// Bytes the header takes.
    size: usize,
}

impl ConnectRewriter {
    /// Takes `input` (bytes read from the client) and appends what the server's WebSocket
    /// stack should read to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut BytesMut) {
        while !input.is_empty() {
            match self.state {
                State::Payload(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    out.put_slice(&input[..n]);
                    input = &input[n..];
                    self.state = match left - n as u64 {
                        0 => State::Header,
                        rest => State::Payload(rest),
                    };
                }
                State::Header => {
                    self.partial.put_slice(input);
                    input = &[];
                    self.drain_frames(out);
                }
            }
        }
        if self.partial.is_empty() {
            // Idle connections keep nothing.
            self.partial = BytesMut::new();
        }
    }

    /// Handles the frames that start in `partial`: a complete candidate frame is rewritten,
    /// any other frame's header is passed and its payload streamed.
    fn drain_frames(&mut self, out: &mut BytesMut) {
        while let State::Header = self.state {
            let Some(header) = parse_header(&self.partial) else {
                return;
            };
            let candidate = header.fin
                && header.opcode == TEXT
                && header.len <= MAX_CONNECT_FRAME as u64
                && header.mask.is_some();
            if !candidate {
                out.put_slice(&self.partial[..header.size]);
                self.partial.advance(header.size);
                let inside = (self.partial.len() as u64).min(header.len);
                out.put_slice(&self.partial[..inside as usize]);
                self.partial.advance(inside as usize);
                if header.len > inside {
                    // `partial` is empty now: the rest of the payload streams through.
                    self.state = State::Payload(header.len - inside);
                }
                continue;
            }
            let total = header.size + header.len as usize;
            if self.partial.len() < total {
                return;
            }
            let frame = self.partial.split_to(total);
            rewrite_frame(&header, &frame, out);
        }
    }
}

/// Appends `frame` to `out`, without the CONNECT's query if it has one.
fn rewrite_frame(header: &Header, frame: &[u8], out: &mut BytesMut) {
    let mask = header.mask.unwrap_or_default();
    let mut payload = frame[header.size..].to_vec();
    apply_mask(&mut payload, mask);
    let fixed = std::str::from_utf8(&payload)
        .ok()
        .and_then(strip_connect_query);
    let Some(fixed) = fixed else {
        out.put_slice(frame);
        return;
    };
    let mut body = fixed.into_bytes();
    out.put_u8(0x80 | TEXT);
    put_length(out, body.len());
    out.put_slice(&mask);
    apply_mask(&mut body, mask);
    out.put_slice(&body);
}

/// The masked length field (client frames are always masked).
fn put_length(out: &mut BytesMut, len: usize) {
    if len < 126 {
        out.put_u8(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.put_u8(0x80 | 126);
        out.put_u16(short);
    } else {
        out.put_u8(0x80 | 127);
        out.put_u64(len as u64);
    }
}

fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// The header at the start of `buf`, once all of it is there.
fn parse_header(buf: &[u8]) -> Option<Header> {
    let (&b0, rest) = buf.split_first()?;
    let (&b1, rest) = rest.split_first()?;
    let (len, rest, mut size) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            &rest[2..],
            4,
        ),
        127 => (
            u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
            &rest[8..],
            10,
        ),
        short => (u64::from(short), rest, 2),
    };
    let mask = if b1 & 0x80 != 0 {
        size += 4;
        Some(rest.get(..4)?.try_into().ok()?)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        mask,
        len,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_u8(if fin { 0x80 } else { 0 } | opcode);
        put_length(&mut out, payload.len());
        out.put_slice(&mask);
        let mut body = payload.to_vec();
        apply_mask(&mut body, mask);
        out.put_slice(&body);
        out.to_vec()
    }

    /// Feeds `input` in chunks of `chunk` bytes.
    fn run(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut rewriter = ConnectRewriter::default();
        let mut out = BytesMut::new();
        for piece in input.chunks(chunk) {
            rewriter.feed(piece, &mut out);
        }
        assert!(rewriter.partial.is_empty());
        out.to_vec()
    }

    #[test]
    fn a_connect_query_is_dropped_and_the_rest_passes_untouched() {
        let mask = [1, 2, 3, 4];
        let long = "x".repeat(70_000);
        let stream = [
            frame(true, TEXT, b"2probe", mask),
            frame(true, TEXT, b"40/chat?token=abc,", mask),
            frame(true, 0x2, &[9; 300], mask),
            frame(true, TEXT, long.as_bytes(), mask),
            frame(false, TEXT, b"40/a?b=c,", mask),
            frame(true, 0x9, b"", mask),
        ]
        .concat();
        let expected = [
            frame(true, TEXT, b"2probe", mask),
            frame(true, TEXT, b"40/chat,", mask),
            frame(true, 0x2, &[9; 300], mask),
            frame(true, TEXT, long.as_bytes(), mask),
            frame(false, TEXT, b"40/a?b=c,", mask),
            frame(true, 0x9, b"", mask),
        ]
        .concat();
        for chunk in [1, 2, 3, 7, 100, 1024, stream.len()] {
            assert_eq!(run(&stream, chunk), expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_long_token_gets_a_16_bit_length() {
        let mask = [9, 8, 7, 6];
        let token = "t".repeat(300);
        let input = frame(
            true,
            TEXT,
            format!("40/chat?token={token},").as_bytes(),
            mask,
        );
        assert_eq!(run(&input, 5), frame(true, TEXT, b"40/chat,", mask));
        let keep = format!("40/{token}?x=1,");
        let input = frame(true, TEXT, keep.as_bytes(), mask);
        assert_eq!(
            run(&input, 64),
            frame(true, TEXT, format!("40/{token},").as_bytes(), mask)
        );
    }
}
