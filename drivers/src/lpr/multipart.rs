//! `multipart/form-data` bodies split into parts, in memory, with `multer`.
//!
//! Pure and sans-IO: the whole body is already in memory, so the `multer`
//! stream is a single ready chunk and the future never waits.

use super::ParseError;

/// One part of a multipart body.
#[derive(Debug)]
pub(crate) struct Part {
    /// `name` of the part's `Content-Disposition`.
    pub(crate) name: Option<String>,
    /// `filename` of the part's `Content-Disposition`.
    pub(crate) file_name: Option<String>,
    /// The part's media type, lower-cased, without parameters.
    pub(crate) media_type: Option<String>,
    /// The part's body.
    pub(crate) data: Vec<u8>,
}

/// Whether the body looks like a multipart body (starts with `--`).
pub(crate) fn looks_like_multipart(body: &[u8]) -> bool {
    body.trim_ascii_start().starts_with(b"--")
}

/// The boundary from `content_type`, or, when the header is missing or has
/// none, from the body's first delimiter line.
fn boundary(content_type: Option<&str>, body: &[u8]) -> Result<String, ParseError> {
    if let Some(ct) = content_type
        && let Ok(b) = multer::parse_boundary(ct)
    {
        return Ok(b);
    }
    let body = body.trim_ascii_start();
    let line_end = body
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(body.len());
    let first = &body[..line_end];
    match first.strip_prefix(b"--") {
        Some(b) if !b.is_empty() && b.len() <= 200 => std::str::from_utf8(b)
            .map(|s| s.trim_end().to_owned())
            .map_err(|_| ParseError::Multipart("boundary is not text".into())),
        _ => Err(ParseError::Multipart("no boundary".into())),
    }
}

/// Splits `body` into its parts.
pub(crate) fn parts(content_type: Option<&str>, body: &[u8]) -> Result<Vec<Part>, ParseError> {
    let boundary = boundary(content_type, body)?;
    let chunk: Result<Vec<u8>, std::convert::Infallible> = Ok(body.to_vec());
    let stream = futures::stream::once(async move { chunk });
    let mut multipart = multer::Multipart::new(stream, boundary);
    futures::executor::block_on(async move {
        let mut out = Vec::new();
        loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|e| ParseError::Multipart(super::truncate(&e.to_string())))?;
            let Some(field) = field else { break };
            let name = field.name().map(str::to_owned);
            let file_name = field.file_name().map(str::to_owned);
            let media_type = field.content_type().map(|m| m.essence_str().to_owned());
            let data = field
                .bytes()
                .await
                .map_err(|e| ParseError::Multipart(super::truncate(&e.to_string())))?;
            out.push(Part {
                name,
                file_name,
                media_type,
                data: data.to_vec(),
            });
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--xyz\r\nContent-Disposition: form-data; name=\"b\"; filename=\"b.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xFF\xD8\r\n--xyz--\r\n";

    #[test]
    fn splits_parts_with_header_boundary() {
        let parts = parts(Some("multipart/form-data; boundary=xyz"), BODY).expect("parses");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name.as_deref(), Some("a"));
        assert_eq!(parts[0].data, b"1");
        assert_eq!(parts[1].file_name.as_deref(), Some("b.jpg"));
        assert_eq!(parts[1].media_type.as_deref(), Some("image/jpeg"));
        assert_eq!(parts[1].data, b"\xFF\xD8");
    }

    #[test]
    fn boundary_is_taken_from_the_body_when_the_header_has_none() {
        let parts = parts(None, BODY).expect("parses");
        assert_eq!(parts.len(), 2);
        let parts = super::parts(Some("multipart/form-data"), BODY).expect("parses");
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn truncated_body_is_an_error() {
        let cut = &BODY[..BODY.len() - 12];
        assert!(matches!(parts(None, cut), Err(ParseError::Multipart(_))));
        assert!(matches!(
            parts(None, b"hello"),
            Err(ParseError::Multipart(_))
        ));
        assert!(matches!(parts(None, b"--"), Err(ParseError::Multipart(_))));
    }
}
