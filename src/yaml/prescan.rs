//! A first pass over the YAML events, before anything builds a tree: it gives syntax errors and
//! duplicate keys a line:column, and refuses inputs that would make tree builders (which
//! recurse, or expand aliases by copying) blow the stack or the memory: deep nesting and
//! alias bombs. Without it a 100 000-deep `[[[…` takes libyaml a minute to refuse.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, Parser};

use super::node::Mark;

/// No config needs more; the offspot section is the deepest at about 8.
const MAX_DEPTH: usize = 64;
/// Values in the document once aliases are expanded.
const MAX_NODES: usize = 1_000_000;

#[derive(Debug)]
pub struct Problem {
    pub mark: Mark,
    pub message: String,
}

struct Frame {
    is_map: bool,
    /// Next node in this mapping is a key (else a value).
    expecting_key: bool,
    keys: HashSet<String>,
    anchor: usize,
    /// Nodes inside, this one included, aliases expanded.
    size: usize,
}

/// Records that a node starts in the innermost collection; checks mapping keys for duplicates.
fn slot(stack: &mut [Frame], key: Option<&str>, mark: Mark) -> Result<(), Problem> {
    let Some(parent) = stack.last_mut() else {
        return Ok(());
    };
    if !parent.is_map {
        return Ok(());
    }
    if parent.expecting_key {
        if let Some(key) = key {
            if !parent.keys.insert(key.to_string()) {
                return Err(Problem {
                    mark,
                    message: format!("duplicate key `{key}`"),
                });
            }
        }
    }
    parent.expecting_key = !parent.expecting_key;
    Ok(())
}

/// Checks the first document of `text`.
pub fn prescan(text: &str) -> Result<(), Problem> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, usize> = HashMap::new();
    let mut total: usize = 0;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| Problem {
            mark: (*e.marker()).into(),
            message: e.info().to_string(),
        })?;
        let mark: Mark = marker.into();
        let is_end = matches!(event, Event::SequenceEnd | Event::MappingEnd);
        // Size of a node that is complete with this event, and its anchor.
        let done = match event {
            Event::StreamEnd | Event::DocumentEnd => return Ok(()),
            Event::Scalar(text, _, anchor, _) => {
                slot(&mut stack, Some(&text), mark)?;
                Some((1, anchor))
            }
            Event::Alias(id) => {
                slot(&mut stack, None, mark)?;
                Some((anchors.get(&id).copied().unwrap_or(1), 0))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                slot(&mut stack, None, mark)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(Problem {
                        mark,
                        message: format!("nested more than {MAX_DEPTH} levels deep"),
                    });
                }
                stack.push(Frame {
                    is_map: matches!(event, Event::MappingStart(..)),
                    expecting_key: true,
                    keys: HashSet::new(),
                    anchor,
                    size: 1,
                });
                total += 1;
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop().map(|frame| (frame.size, frame.anchor))
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart => None,
        };
        let Some((size, anchor)) = done else {
            continue;
        };
        if anchor > 0 {
            anchors.insert(anchor, size);
        }
        if !is_end {
            // Collections were counted when they started, their content as it came.
            total = total.saturating_add(size);
        }
        if let Some(parent) = stack.last_mut() {
            parent.size = parent.size.saturating_add(size);
        }
        if total > MAX_NODES {
            return Err(Problem {
                mark,
                message: format!("aliases expand to more than {MAX_NODES} values"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicates_at_any_level() {
        let p = prescan("a: 1\nb:\n  c: 1\n  d: [1, {e: 1, e: 2}]\n").unwrap_err();
        assert_eq!((p.mark.line, p.message.as_str()), (4, "duplicate key `e`"));
        let p = prescan("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(p.mark.line, 3);
        // Same text as a value, or in sibling mappings, is fine.
        prescan("a: a\nb: {a: 1}\nc: {a: 2}\nd: [a, a]\n").unwrap();
    }

    #[test]
    fn refuses_depth_and_bombs() {
        let deep = format!("a: {}1{}\n", "[".repeat(100), "]".repeat(100));
        assert!(prescan(&deep).unwrap_err().message.contains("nested"));
        let deep_block = format!("a:\n{}x\n", "- ".repeat(10_000));
        assert!(prescan(&deep_block).is_err());
        let mut bomb = String::from("x0: &a0 [aa, aa]\n");
        for i in 1..30 {
            bomb.push_str(&format!("x{i}: &a{i} [*a{p}, *a{p}, *a{p}]\n", p = i - 1));
        }
        assert!(prescan(&bomb).unwrap_err().message.contains("aliases"));
        prescan("a: &x {b: 1}\nc: *x\nd: [*x, *x]\n").unwrap();
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let p = prescan("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(p.mark.line >= 1 && !p.message.is_empty());
    }
}
