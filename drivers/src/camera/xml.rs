//! A small, hostile-input-safe XML tree for SOAP replies.
//!
//! Camera replies are read with `quick-xml` into a tree of [`Element`]s named
//! by their local names (prefixes differ between firmwares and do not
//! matter to Gatehouse). The reader is strict about what a camera — or
//! something pretending to be one — may send:
//!
//! - a `<!DOCTYPE>` is refused, so no DTD and no entity is ever declared;
//! - only the five predefined entities and character references are
//!   resolved, anything else is an error (no expansion, no external fetch);
//! - the body is capped at [`MAX_BODY`] bytes, nesting at [`MAX_DEPTH`]
//!   and the number of elements at [`MAX_ELEMENTS`].

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// Largest reply body read, in bytes.
pub const MAX_BODY: usize = 512 * 1024;
/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 20_000;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Larger than [`MAX_BODY`].
    #[error("document larger than {MAX_BODY} bytes")]
    TooLarge,
    /// Deeper than [`MAX_DEPTH`] or with more than [`MAX_ELEMENTS`] elements.
    #[error("document nested too deeply or too many elements")]
    TooComplex,
    /// A `<!DOCTYPE>` (DTDs and their entities are never read).
    #[error("a DOCTYPE is not accepted")]
    Doctype,
    /// An entity other than the five predefined ones.
    #[error("undeclared entity &{0};")]
    Entity(String),
    /// Not well-formed.
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// One element: local name, attributes (local names) and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name (no prefix).
    pub name: String,
    /// Attributes by local name, in document order.
    pub attrs: Vec<(String, String)>,
    /// The element's own text (concatenated, untrimmed).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first direct child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first element called `name` below this one (depth first).
    pub fn find(&self, name: &str) -> Option<&Element> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(found) = c.find(name) {
                return Some(found);
            }
        }
        None
    }

    /// Every element called `name` below this one, in document order.
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.find_all(name, out);
        }
    }

    /// The trimmed text of the first descendant called `name`.
    pub fn text_of(&self, name: &str) -> Option<String> {
        self.find(name).map(|e| e.text.trim().to_owned())
    }

    /// An attribute by local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a document into its root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    if body.len() > MAX_BODY {
        return Err(XmlError::TooLarge);
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|_| XmlError::Malformed("not UTF-8".into()))?;
    let mut reader = Reader::from_str(text);
    let malformed = |e: quick_xml::Error| XmlError::Malformed(short(&e.to_string()));
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        match reader.read_event().map_err(malformed)? {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(start) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(XmlError::TooComplex);
                }
                if root.is_some() && stack.is_empty() {
                    return Err(XmlError::Malformed("more than one root element".into()));
                }
                stack.push(element(&start)?);
            }
            Event::Empty(start) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(XmlError::TooComplex);
                }
                let e = element(&start)?;
                close(&mut stack, &mut root, e)?;
            }
            Event::End(_) => {
                let e = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                close(&mut stack, &mut root, e)?;
            }
            Event::Text(t) => match stack.last_mut() {
                Some(top) => top.text.push_str(&t.xml10_content()),
                None if t.trim_ascii().is_empty() => {}
                None => return Err(XmlError::Malformed("text outside the root element".into())),
            },
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(malformed)?
                        .map(String::from)
                        .ok_or_else(|| XmlError::Entity(short(&r)))?
                } else {
                    let name: &str = &r;
                    quick_xml::escape::resolve_predefined_entity(name)
                        .map(str::to_owned)
                        .ok_or_else(|| XmlError::Entity(short(name)))?
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed(
            "document ends inside an element".into(),
        ));
    }
    root.ok_or_else(|| XmlError::Malformed("no root element".into()))
}

fn element(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = start.local_name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Malformed(short(&e.to_string())))?;
        let key = attr.key.local_name().as_ref().to_owned();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| match e {
                quick_xml::Error::Escape(esc) => XmlError::Entity(short(&esc.to_string())),
                other => XmlError::Malformed(short(&other.to_string())),
            })?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        text: String::new(),
        children: Vec::new(),
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, e: Element) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(e),
        None if root.is_none() => *root = Some(e),
        None => return Err(XmlError::Malformed("more than one root element".into())),
    }
    Ok(())
}

/// At most 80 characters, for error messages.
pub(crate) fn short(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_local_names_attributes_and_predefined_entities() {
        let doc = br#"<?xml version="1.0"?><s:E xmlns:s="urn:x"><s:B a="1 &amp; 2"><u>a&amp;b&#x41;</u><e/></s:B></s:E>"#;
        let root = parse(doc).expect("parses");
        assert_eq!(root.name, "E");
        let b = root.child("B").expect("B");
        assert_eq!(b.attr("a"), Some("1 & 2"));
        assert_eq!(root.text_of("u").as_deref(), Some("a&bA"));
        assert!(root.find("e").is_some());
    }

    #[test]
    fn refuses_doctype_entities_depth_and_size() {
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><a>&lol2;</a>"#;
        assert_eq!(parse(bomb), Err(XmlError::Doctype));
        assert!(matches!(parse(b"<a>&xxe;</a>"), Err(XmlError::Entity(_))));
        assert!(matches!(
            parse(br#"<a b="&xxe;"/>"#),
            Err(XmlError::Entity(_))
        ));
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooComplex));
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS + 1));
        assert!(matches!(
            parse(wide.as_bytes()),
            Err(XmlError::TooComplex | XmlError::TooLarge)
        ));
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(parse(&big), Err(XmlError::TooLarge));
    }

    #[test]
    fn refuses_malformed_documents() {
        for doc in [
            &b""[..],
            b"<a>",
            b"<a></b>",
            b"<a/><b/>",
            b"text",
            b"\xff\xfe",
        ] {
            assert!(parse(doc).is_err(), "{:?}", String::from_utf8_lossy(doc));
        }
    }
}
