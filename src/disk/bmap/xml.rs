//! A minimal, strict XML reader for bmap files: elements, attributes, text, comments and processing
//! instructions. DOCTYPE, CDATA and entities other than the five predefined ones are refused: a bmap never
//! needs them, and refusing them keeps the reader small and safe (no entity expansion).

/// One element of the tree. `text` is the concatenation of its direct text nodes (entities decoded);
/// `text_spans` are the byte ranges of those text nodes in the document, so a caller can locate a value
/// in the raw bytes (the bmap file checksum is computed over the raw file).
#[derive(Debug)]
pub(super) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
    pub text_spans: Vec<(usize, usize)>,
    /// Byte offset of the `<` that opens the element, for error messages.
    pub offset: usize,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What was expected at a byte offset of the document.
#[derive(Debug)]
pub(super) struct XmlError {
    pub offset: usize,
    pub expected: String,
}

/// Nesting deeper than this is not a bmap; the bound keeps the parser's stack small.
const MAX_DEPTH: usize = 16;

struct Cursor<'a> {
    doc: &'a str,
    pos: usize,
}

fn err<T>(offset: usize, expected: impl Into<String>) -> Result<T, XmlError> {
    Err(XmlError {
        offset,
        expected: expected.into(),
    })
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.doc[self.pos..]
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    /// Skips to just after `end`, which must occur.
    fn skip_past(&mut self, end: &str, what: &str) -> Result<(), XmlError> {
        match self.rest().find(end) {
            Some(i) => {
                self.pos += i + end.len();
                Ok(())
            }
            None => err(self.pos, format!("the end of the {what} ({end:?})")),
        }
    }

    fn name(&mut self) -> Result<String, XmlError> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
            .unwrap_or(rest.len());
        if len == 0 || rest.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') {
            return err(self.pos, "a name");
        }
        self.pos += len;
        Ok(rest[..len].to_string())
    }

    /// Skips whitespace, comments and processing instructions; refuses DOCTYPE and CDATA.
    fn skip_misc(&mut self) -> Result<(), XmlError> {
        loop {
            self.skip_ws();
            if self.eat("<!--") {
                self.skip_past("-->", "comment")?;
            } else if self.eat("<?") {
                self.skip_past("?>", "processing instruction")?;
            } else if self.rest().starts_with("<!") {
                return err(
                    self.pos,
                    "an element or a comment (DOCTYPE and CDATA are not supported)",
                );
            } else {
                return Ok(());
            }
        }
    }
}

/// Decodes the five predefined entities; anything else after `&` is refused.
fn decode(raw: &str, offset: usize) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let (ch, len) = [
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&amp;", '&'),
            ("&quot;", '"'),
            ("&apos;", '\''),
        ]
        .iter()
        .find(|(e, _)| after.starts_with(e))
        .map(|(e, c)| (*c, e.len()))
        .ok_or(XmlError {
            offset: offset + (raw.len() - rest.len()) + i,
            expected: "one of the entities &lt; &gt; &amp; &quot; &apos;".into(),
        })?;
        out.push(ch);
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a start tag after its `<`: name, attributes; returns the element and whether it was `/>`.
fn start_tag(c: &mut Cursor, offset: usize) -> Result<(Element, bool), XmlError> {
    let name = c.name()?;
    let mut attrs: Vec<(String, String)> = Vec::new();
    loop {
        let before_ws = c.pos;
        c.skip_ws();
        if c.eat("/>") {
            return Ok((element(name, attrs, offset), true));
        }
        if c.eat(">") {
            return Ok((element(name, attrs, offset), false));
        }
        if c.pos == before_ws {
            return err(
                c.pos,
                format!("whitespace, '>' or '/>' in the <{name}> tag"),
            );
        }
        let at = c.pos;
        let attr = c.name()?;
        c.skip_ws();
        if !c.eat("=") {
            return err(c.pos, format!("'=' after attribute {attr}"));
        }
        c.skip_ws();
        let quote = match c.rest().chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => return err(c.pos, format!("a quoted value for attribute {attr}")),
        };
        c.pos += 1;
        let start = c.pos;
        let Some(len) = c.rest().find(quote) else {
            return err(start, format!("the closing quote of attribute {attr}"));
        };
        let raw = &c.doc[start..start + len];
        if raw.contains('<') {
            return err(start, format!("a value without '<' for attribute {attr}"));
        }
        c.pos = start + len + 1;
        if attrs.iter().any(|(n, _)| *n == attr) {
            return err(at, format!("attribute {attr} only once"));
        }
        attrs.push((attr, decode(raw, start)?));
    }
}

fn element(name: String, attrs: Vec<(String, String)>, offset: usize) -> Element {
    Element {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
        text_spans: Vec::new(),
        offset,
    }
}

/// Parses a whole document and returns its root element.
pub(super) fn parse(doc: &str) -> Result<Element, XmlError> {
    let mut c = Cursor { doc, pos: 0 };
    c.eat("\u{feff}");
    c.skip_misc()?;
    if !c.eat("<") {
        return err(c.pos, "the root element");
    }
    let at = c.pos - 1;
    let (root, empty) = start_tag(&mut c, at)?;
    let root = if empty { root } else { content(&mut c, root)? };
    c.skip_misc()?;
    if c.pos != doc.len() {
        return err(c.pos, "the end of the document after the root element");
    }
    Ok(root)
}

/// Reads the content of `open` up to its end tag, iteratively (explicit stack, bounded depth).
fn content(c: &mut Cursor, open: Element) -> Result<Element, XmlError> {
    let mut stack = vec![open];
    loop {
        let text_start = c.pos;
        let text_len = c.rest().find('<').unwrap_or(c.rest().len());
        let Some(top) = stack.last_mut() else {
            return err(c.pos, "an open element");
        };
        if text_len > 0 {
            let raw = &c.doc[text_start..text_start + text_len];
            top.text.push_str(&decode(raw, text_start)?);
            top.text_spans.push((text_start, text_start + text_len));
            c.pos += text_len;
        }
        if c.rest().is_empty() {
            return err(c.pos, format!("</{}>", top.name));
        }
        let at = c.pos;
        if c.eat("<!--") {
            c.skip_past("-->", "comment")?;
        } else if c.eat("<?") {
            c.skip_past("?>", "processing instruction")?;
        } else if c.eat("</") {
            let name = c.name()?;
            c.skip_ws();
            if name != top.name || !c.eat(">") {
                return err(at, format!("</{}>", top.name));
            }
            let Some(done) = stack.pop() else {
                return err(at, "an open element");
            };
            match stack.last_mut() {
                Some(parent) => parent.children.push(done),
                None => return Ok(done),
            }
        } else if c.rest().starts_with("<!") {
            return err(
                at,
                "an element or a comment (DOCTYPE and CDATA are not supported)",
            );
        } else {
            c.pos += 1;
            let (child, empty) = start_tag(c, at)?;
            if empty {
                top.children.push(child);
            } else if stack.len() >= MAX_DEPTH {
                return err(at, format!("at most {MAX_DEPTH} levels of nested elements"));
            } else {
                stack.push(child);
            }
        }
    }
}
