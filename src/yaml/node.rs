//! A YAML node tree that keeps what serde throws away: each node's position (line:column) and
//! each scalar's style (plain or quoted). Positions let validation errors point at the file;
//! styles let the `offspot:` section be resolved exactly as the device's YAML 1.1 reader
//! (PyYAML) resolves it — an unquoted `80:80` is an integer there, a quoted one a string.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based position in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl From<Marker> for Mark {
    fn from(m: Marker) -> Self {
        Mark {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar {
        text: String,
        style: Style,
        tagged: Option<String>,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub mark: Mark,
}

impl Node {
    /// The value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find_map(|(k, v)| match &k.kind {
                NodeKind::Scalar { text, .. } if text == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Every node's position by key path (`files[3].via`, `offspot.ap.ssid`); "" is the root.
    pub fn marks(&self) -> HashMap<String, Mark> {
        let mut out = HashMap::new();
        self.collect_marks(String::new(), &mut out);
        out
    }

    fn collect_marks(&self, path: String, out: &mut HashMap<String, Mark>) {
        match &self.kind {
            NodeKind::Scalar { .. } => {}
            NodeKind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.collect_marks(format!("{path}[{i}]"), out);
                }
            }
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    let key = k.as_str().unwrap_or("?");
                    let child = if path.is_empty() {
                        key.to_string()
                    } else {
                        format!("{path}.{key}")
                    };
                    v.collect_marks(child, out);
                }
            }
        }
        out.insert(path, self.mark);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{mark}: {info}")]
pub struct SyntaxError {
    pub mark: Mark,
    pub info: String,
}

/// Parses the first document of `text`. Aliases are expanded; an empty document is an empty map.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        mark: (*e.marker()).into(),
        info: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or(Node {
        kind: NodeKind::Map(Vec::new()),
        mark: Mark { line: 1, col: 1 },
    }))
}

enum Open {
    Seq(Node, usize),
    Map(Node, usize, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Open::Seq(seq, _)) => {
                if let NodeKind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some(Open::Map(map, _, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let NodeKind::Map(entries) = &mut map.kind {
                        let dup = entries
                            .iter()
                            .any(|(k, _)| k.as_str().is_some() && k.as_str() == key.as_str());
                        if dup && self.error.is_none() {
                            self.error = Some(SyntaxError {
                                mark: key.mark,
                                info: format!("duplicate key `{}`", key.as_str().unwrap_or("?")),
                            });
                        }
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        let mark: Mark = marker.into();
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let style = match style {
                    TScalarStyle::Plain => Style::Plain,
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => Style::Quoted,
                    TScalarStyle::Literal | TScalarStyle::Folded => Style::Block,
                };
                let tagged = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                self.push_value(
                    Node {
                        kind: NodeKind::Scalar {
                            text,
                            style,
                            tagged,
                        },
                        mark,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq(
                Node {
                    kind: NodeKind::Seq(Vec::new()),
                    mark,
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push(Open::Map(
                Node {
                    kind: NodeKind::Map(Vec::new()),
                    mark,
                },
                anchor,
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Seq(node, anchor)) | Some(Open::Map(node, anchor, _)) => {
                    self.push_value(node, anchor)
                }
                None => {}
            },
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    kind: NodeKind::Scalar {
                        text: String::new(),
                        style: Style::Plain,
                        tagged: None,
                    },
                    mark,
                });
                self.push_value(node, 0);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_and_styles() {
        let text = "base: 1.4.2\nfiles:\n- to: /data/a\n  content: \"80:80\"\n- to: /data/b\n";
        let root = parse(text).unwrap();
        let marks = root.marks();
        assert_eq!(marks["files[1].to"], Mark { line: 5, col: 7 });
        assert_eq!(marks["base"], Mark { line: 1, col: 7 });
        let content = root.get("files").and_then(|f| match &f.kind {
            NodeKind::Seq(items) => items[0].get("content").cloned(),
            _ => None,
        });
        assert!(matches!(
            content.unwrap().kind,
            NodeKind::Scalar {
                style: Style::Quoted,
                ..
            }
        ));
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.mark.line, 3);
        assert!(err.info.contains("duplicate key `a`"));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.mark.line >= 1, "{err}");
    }
}
