//! Config errors, and how a key path (`files[3].via`) is turned into a line:column.

use std::fmt;

use super::offspot::OffspotError;
use crate::yaml::node::{Mark, Node, NodeKind, Style};
use crate::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not YAML (or uses YAML features we refuse, like alias bombs).
    #[error("{origin}:{mark}: invalid YAML: {message}")]
    Syntax {
        origin: String,
        mark: Mark,
        message: String,
    },
    /// A key or value that breaks the schema.
    #[error("{origin}:{mark}: {key_path}: {message}")]
    Invalid {
        origin: String,
        mark: Mark,
        key_path: String,
        message: String,
    },
    /// The `offspot:` section was refused by the offspot rules. The inner error's text is the
    /// message, so it is kept as a field rather than a `#[source]` (it would print twice).
    #[error("{origin}:{mark}: {key_path}: {}", inner.message)]
    Offspot {
        origin: String,
        mark: Mark,
        key_path: String,
        inner: Box<OffspotError>,
    },
}

impl ConfigError {
    /// Where in the file the problem is.
    pub fn mark(&self) -> Mark {
        match self {
            ConfigError::Syntax { mark, .. }
            | ConfigError::Invalid { mark, .. }
            | ConfigError::Offspot { mark, .. } => *mark,
        }
    }

    /// The key path (`files[3].via`); `None` for syntax errors.
    pub fn key_path(&self) -> Option<&str> {
        match self {
            ConfigError::Syntax { .. } => None,
            ConfigError::Invalid { key_path, .. } | ConfigError::Offspot { key_path, .. } => {
                Some(key_path)
            }
        }
    }
}

impl Classify for ConfigError {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadInput
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the top of the document: `files[3].checksum.algo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub(super) fn root() -> Self {
        KeyPath(Vec::new())
    }

    pub(super) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        KeyPath(segs)
    }

    pub(super) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    pub(super) fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }

    pub(super) fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        KeyPath(
            path.iter()
                .filter_map(|seg| match seg {
                    Segment::Seq { index } => Some(Seg::Index(*index)),
                    Segment::Map { key } => Some(Seg::Key(key.clone())),
                    Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                    Segment::Unknown => None,
                })
                .collect(),
        )
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

fn is_empty(node: &Node) -> bool {
    matches!(&node.kind, NodeKind::Scalar { text, style: Style::Plain, .. } if text.is_empty())
}

/// Builds errors that point into the file.
pub(super) struct Locator<'a> {
    pub origin: &'a str,
    pub root: &'a Node,
}

impl Locator<'_> {
    /// The position of the node at `path` (of its key if `at_key`); when the path goes further
    /// than the document (a missing key), the deepest node that exists.
    pub(super) fn mark(&self, path: &KeyPath, at_key: bool) -> Mark {
        let mut node = self.root;
        let last = path.0.len().saturating_sub(1);
        for (i, seg) in path.0.iter().enumerate() {
            let next = match (seg, &node.kind) {
                (Seg::Key(key), NodeKind::Map(entries)) => entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(key.as_str()))
                    // An empty value (`base:`) is positioned at the next token, often on the
                    // next line; its key is where the reader should look.
                    .map(|(k, v)| {
                        if (at_key || is_empty(v)) && i == last {
                            k
                        } else {
                            v
                        }
                    }),
                (Seg::Index(n), NodeKind::Seq(items)) => items.get(*n),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        // A block mapping's own mark comes after its first key; the key is what a reader finds.
        match &node.kind {
            NodeKind::Map(entries) => entries.first().map_or(node.mark, |(k, _)| k.mark),
            _ => node.mark,
        }
    }

    /// An error about the value at `path`.
    pub(super) fn invalid(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        self.build(path, false, message.into())
    }

    /// An error about the key at the end of `path` (unknown keys).
    pub(super) fn invalid_key(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        self.build(path, true, message.into())
    }

    fn build(&self, path: &KeyPath, at_key: bool, message: String) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_string(),
            mark: self.mark(path, at_key),
            key_path: path.to_string(),
            message,
        }
    }
}
