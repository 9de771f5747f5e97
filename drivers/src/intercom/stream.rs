//! An incremental splitter for long-lived multipart streams (a Hikvision
//! door station's `alertStream`): bytes go in as they arrive, whole parts
//! come out.
//!
//! Pure and sans-IO. Memory is bounded: a part larger than `max_part` is
//! skipped (reported as [`Piece::Oversized`]) without being kept, header
//! blocks are capped at [`MAX_HEADERS`], and garbage between parts is
//! dropped while looking for the next delimiter. A part is cut by its
//! `Content-Length` when it has one (binary parts may contain the
//! delimiter), otherwise at the next delimiter.

/// Longest header block of one part.
pub const MAX_HEADERS: usize = 8 * 1024;

/// One part of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPart {
    /// The part's media type, lower-cased, without parameters.
    pub media_type: Option<String>,
    /// The part's body.
    pub body: Vec<u8>,
}

/// What the splitter found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A whole part.
    Part(StreamPart),
    /// A part larger than the limit was skipped.
    Oversized,
    /// A part's headers were broken or too long; skipped to the next delimiter.
    Malformed(&'static str),
}

#[derive(Debug)]
enum State {
    /// Looking for the next delimiter line.
    Seek,
    /// Reading a part's headers.
    Headers,
    /// Reading a body of known length.
    Sized {
        len: usize,
        media_type: Option<String>,
    },
    /// Reading a body up to the next delimiter.
    Open { media_type: Option<String> },
    /// Discarding the rest of an oversized part of known length.
    Skip { left: usize },
}

/// The splitter. Feed it with [`Splitter::push`].
#[derive(Debug)]
pub struct Splitter {
    delimiter: Vec<u8>,
    max_part: usize,
    buf: Vec<u8>,
    state: State,
}

impl Splitter {
    /// A splitter for `boundary` (without the leading `--`) that keeps parts
    /// up to `max_part` bytes.
    pub fn new(boundary: &str, max_part: usize) -> Self {
        let mut delimiter = b"--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Self {
            delimiter,
            max_part,
            buf: Vec::new(),
            state: State::Seek,
        }
    }

    /// Bytes held right now (bounded by `max_part` plus a delimiter, or
    /// [`MAX_HEADERS`]).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Adds bytes and returns every piece they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut bytes = bytes;
        if let State::Skip { left } = &mut self.state {
            let n = (*left).min(bytes.len());
            *left -= n;
            bytes = &bytes[n..];
            if *left == 0 {
                self.state = State::Seek;
            }
        }
        self.buf.extend_from_slice(bytes);
        while self.step(&mut out) {}
        out
    }

    /// Advances once; `false` when more bytes are needed.
    fn step(&mut self, out: &mut Vec<Piece>) -> bool {
        match std::mem::replace(&mut self.state, State::Seek) {
            State::Seek => match find(&self.buf, &self.delimiter) {
                Some(at) => {
                    let after = at + self.delimiter.len();
                    // The rest of the delimiter line (`\r\n`, or `--` at the end).
                    let Some(eol) = self.buf[after..].iter().position(|&b| b == b'\n') else {
                        if self.buf.len() - after > 256 {
                            self.buf.drain(..after);
                            out.push(Piece::Malformed("delimiter line too long"));
                            return true;
                        }
                        self.buf.drain(..at);
                        return false;
                    };
                    self.buf.drain(..after + eol + 1);
                    self.state = State::Headers;
                    true
                }
                None => {
                    let keep = self.delimiter.len().saturating_sub(1);
                    if self.buf.len() > keep {
                        self.buf.drain(..self.buf.len() - keep);
                    }
                    false
                }
            },
            State::Headers => {
                let end = find(&self.buf, b"\r\n\r\n")
                    .map(|i| (i, 4))
                    .or_else(|| find(&self.buf, b"\n\n").map(|i| (i, 2)));
                let too_long = match end {
                    Some((end, _)) => end > MAX_HEADERS,
                    None => self.buf.len() > MAX_HEADERS,
                };
                if too_long {
                    // Look for the next delimiter in what follows.
                    if end.is_none() {
                        let keep = self.delimiter.len();
                        self.buf.drain(..self.buf.len() - keep);
                    }
                    out.push(Piece::Malformed("part headers too long"));
                    return true;
                }
                let Some((end, sep)) = end else {
                    self.state = State::Headers;
                    return false;
                };
                let Ok(head) = std::str::from_utf8(&self.buf[..end]) else {
                    self.buf.drain(..end + sep);
                    out.push(Piece::Malformed("part headers are not text"));
                    return true;
                };
                let (media_type, len) = parse_headers(head);
                self.buf.drain(..end + sep);
                self.state = match len {
                    Some(Ok(len)) if len > self.max_part => {
                        out.push(Piece::Oversized);
                        let n = len.min(self.buf.len());
                        self.buf.drain(..n);
                        if len > n {
                            State::Skip { left: len - n }
                        } else {
                            State::Seek
                        }
                    }
                    Some(Ok(len)) => State::Sized { len, media_type },
                    Some(Err(())) => {
                        out.push(Piece::Malformed("bad Content-Length"));
                        State::Seek
                    }
                    None => State::Open { media_type },
                };
                true
            }
            State::Sized { len, media_type } => {
                if self.buf.len() < len {
                    self.state = State::Sized { len, media_type };
                    return false;
                }
                let body: Vec<u8> = self.buf.drain(..len).collect();
                out.push(Piece::Part(StreamPart { media_type, body }));
                true
            }
            State::Open { media_type } => match find(&self.buf, &self.delimiter) {
                Some(at) => {
                    let mut end = at;
                    if self.buf[..end].ends_with(b"\n") {
                        end -= 1;
                    }
                    if self.buf[..end].ends_with(b"\r") {
                        end -= 1;
                    }
                    if end > self.max_part {
                        out.push(Piece::Oversized);
                    } else {
                        let body = self.buf[..end].to_vec();
                        out.push(Piece::Part(StreamPart { media_type, body }));
                    }
                    self.buf.drain(..at);
                    true
                }
                None if self.buf.len() > self.max_part + self.delimiter.len() + 2 => {
                    out.push(Piece::Oversized);
                    // Keep only what could be the start of the next delimiter.
                    let keep = self.delimiter.len() + 1;
                    self.buf.drain(..self.buf.len() - keep);
                    true
                }
                None => {
                    self.state = State::Open { media_type };
                    false
                }
            },
            State::Skip { left } => {
                self.state = State::Skip { left };
                false
            }
        }
    }
}

fn parse_headers(head: &str) -> (Option<String>, Option<Result<usize, ()>>) {
    let mut media_type = None;
    let mut len = None;
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-type") {
            let essence = value.split(';').next().unwrap_or("").trim();
            media_type = Some(essence.to_ascii_lowercase());
        } else if name.trim().eq_ignore_ascii_case("content-length") {
            len = Some(value.parse::<usize>().map_err(|_| ()));
        }
    }
    (media_type, len)
}

/// The boundary of a `multipart/*` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 200)
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(body: &[u8], sized: bool) -> Vec<u8> {
        let mut out =
            b"--MIME_boundary\r\nContent-Type: application/json; charset=\"UTF-8\"\r\n".to_vec();
        if sized {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn bodies(pieces: &[Piece]) -> Vec<Vec<u8>> {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Part(p) => Some(p.body.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sized_and_open_parts_come_out_whole_even_one_byte_at_a_time() {
        let mut stream = part(b"{\"a\":1}", true);
        stream.extend(part(b"{\"b\":2}", false));
        stream.extend(part(b"{\"c\":3}", true));
        let mut s = Splitter::new("MIME_boundary", 1024);
        let mut pieces = Vec::new();
        for b in &stream {
            pieces.extend(s.push(std::slice::from_ref(b)));
        }
        // The open part ends at the next delimiter, which the third part brings.
        assert_eq!(
            bodies(&pieces),
            vec![
                b"{\"a\":1}".to_vec(),
                b"{\"b\":2}".to_vec(),
                b"{\"c\":3}".to_vec()
            ]
        );
        if let Piece::Part(p) = &pieces[0] {
            assert_eq!(p.media_type.as_deref(), Some("application/json"));
        }
    }

    #[test]
    fn a_sized_body_may_contain_the_delimiter() {
        let stream = part(b"x\r\n--MIME_boundary\r\ny", true);
        let mut s = Splitter::new("MIME_boundary", 1024);
        assert_eq!(
            bodies(&s.push(&stream)),
            vec![b"x\r\n--MIME_boundary\r\ny".to_vec()]
        );
    }

    #[test]
    fn oversized_parts_are_skipped_without_being_kept() {
        let big = vec![b'x'; 10_000];
        let mut stream = part(&big, true);
        stream.extend(part(&big, false));
        stream.extend(part(b"ok", true));
        let mut s = Splitter::new("MIME_boundary", 100);
        let mut pieces = Vec::new();
        let mut most = 0;
        for chunk in stream.chunks(37) {
            pieces.extend(s.push(chunk));
            most = most.max(s.buffered());
        }
        assert_eq!(
            pieces.iter().filter(|p| **p == Piece::Oversized).count(),
            2,
            "{pieces:?}"
        );
        assert_eq!(bodies(&pieces), vec![b"ok".to_vec()]);
        assert!(most < 300, "held {most} bytes");
    }

    #[test]
    fn garbage_and_broken_headers_are_skipped() {
        let mut stream = b"garbage garbage\r\n".to_vec();
        stream.extend(b"--MIME_boundary\r\nContent-Length: nope\r\n\r\nbody\r\n");
        stream.extend(b"--MIME_boundary\r\n");
        stream.extend(vec![b'h'; MAX_HEADERS + 10]);
        stream.extend(part(b"fine", true));
        let mut s = Splitter::new("MIME_boundary", 100);
        let pieces = s.push(&stream);
        assert!(pieces.contains(&Piece::Malformed("bad Content-Length")));
        assert!(pieces.contains(&Piece::Malformed("part headers too long")));
        assert_eq!(bodies(&pieces), vec![b"fine".to_vec()]);
        // Endless garbage is not kept.
        let pieces = s.push(&vec![b'z'; 100_000]);
        assert!(pieces.is_empty());
        assert!(s.buffered() < 20);
    }

    #[test]
    fn boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary("multipart/mixed; boundary=MIME_boundary").as_deref(),
            Some("MIME_boundary")
        );
        assert_eq!(
            boundary("multipart/mixed;boundary=\"b 1\"").as_deref(),
            Some("b 1")
        );
        assert_eq!(boundary("multipart/mixed"), None);
    }
}
