//! A small YAML tree with positions, built from `saphyr-parser` events with
//! bounded nesting and alias expansion, so that no input can exhaust the stack.
//!
//! Ready-made YAML trees recurse when they are cloned, hashed or dropped; a
//! hostile file (`- - - - ...` a million times) then overflows the stack. Here
//! the tree is built with an explicit stack and refused beyond
//! [`MAX_DEPTH`] levels, which also bounds every recursion over it later.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

/// Deeper nesting is refused; strategy files need about six levels.
const MAX_DEPTH: usize = 64;
/// At most this many nodes, aliases expanded, per document.
const MAX_NODES: usize = 1_000_000;
/// The handle of the YAML core schema tags (`!!str`, `!!int`, ...).
const CORE_SCHEMA: &str = "tag:yaml.org,2002:";

/// A place in the text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Pos {
    fn from_marker(marker: &Marker) -> Pos {
        Pos {
            line: marker.line().max(1),
            column: marker.col() + 1,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) value: Value,
    /// Where the node starts (for a block mapping: its first key).
    pub(super) pos: Pos,
}

/// A node's content. Scalars keep their text as written, for messages.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Null,
    Bool(bool, String),
    Int(i64, String),
    Float(f64, String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One `key: value` pair of a mapping; keys are scalars, taken as text.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) key_pos: Pos,
    pub(super) value: Node,
}

impl Node {
    /// What the node is, for "expected X, found Y" messages.
    pub(super) fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".to_owned(),
            Value::Bool(_, text) => format!("boolean {}", cut(text)),
            Value::Int(_, text) => format!("integer {}", cut(text)),
            Value::Float(_, text) => format!("number {}", cut(text)),
            Value::Str(text) => format!("string {}", excerpt(text)),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }

    /// Nodes in this subtree, counting itself.
    fn count(&self) -> usize {
        match &self.value {
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => 1 + entries.iter().map(|e| 1 + e.value.count()).sum::<usize>(),
            _ => 1,
        }
    }

    /// Levels of collections in this subtree (0 for a scalar).
    fn height(&self) -> usize {
        let children = match &self.value {
            Value::Seq(items) => items.iter().map(Node::height).max(),
            Value::Map(entries) => entries.iter().map(|e| e.value.height()).max(),
            _ => return 0,
        };
        1 + children.unwrap_or(0)
    }
}

/// The most characters of a value a message quotes. A message may travel
/// back to whoever named the file (a client of `trdr serve`), so it quotes a
/// glimpse of the offending value, never a whole document.
pub(super) const EXCERPT_CHARS: usize = 60;

/// `text` quoted and escaped as `{:?}` does, cut after [`EXCERPT_CHARS`]
/// characters with a `…` after the closing quote.
pub(super) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// `text` as it is, cut after [`EXCERPT_CHARS`] characters with a `…`: for
/// numbers and booleans as written, and keys in key paths.
pub(super) fn cut(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Why the text is not a usable YAML document.
#[derive(Debug)]
pub(super) struct LoadError {
    pub(super) pos: Pos,
    /// Dotted path of the node being read when it failed; empty at the top.
    pub(super) key_path: String,
    pub(super) message: String,
}

/// A collection being built.
#[derive(Debug)]
enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        /// The key read, waiting for its value.
        key: Option<(String, Pos)>,
        /// Keys so far, with their lines.
        seen: HashMap<String, usize>,
    },
}

/// A finished anchored node, with what an alias to it costs.
#[derive(Debug)]
struct Anchored {
    node: Node,
    /// Nodes in it.
    count: usize,
    /// Levels of collections in it (0 for a scalar).
    height: usize,
}

#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    /// Finished anchored nodes with their node counts, by anchor id.
    anchors: HashMap<usize, Anchored>,
    nodes: usize,
}

/// Parses a single YAML document into a tree. An empty text gives `Ok(None)`.
pub(super) fn load(text: &str) -> Result<Option<Node>, LoadError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    let mut documents = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(event) => event,
            Err(error) => {
                return Err(builder.error(
                    Pos::from_marker(error.marker()),
                    format!("invalid YAML: {}", error.info()),
                ));
            }
        };
        let pos = Pos::from_marker(&span.start);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(builder.error(
                        pos,
                        "a strategy file holds one YAML document, found a second one".to_owned(),
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve_scalar(&text, style, tag.as_deref());
                builder.finish_node(Node { value, pos }, anchor)?;
            }
            Event::Alias(anchor) => builder.alias(anchor, pos)?,
            Event::SequenceStart(anchor, _) => builder.open(
                Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                },
                pos,
            )?,
            Event::MappingStart(anchor, _) => builder.open(
                Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    seen: HashMap::new(),
                },
                pos,
            )?,
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match builder.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (
                        Node {
                            value: Value::Seq(items),
                            pos,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(entries),
                            pos,
                        },
                        anchor,
                    ),
                    None => {
                        return Err(builder.error(pos, "unbalanced collection end".to_owned()));
                    }
                };
                builder.finish_node(node, anchor)?;
            }
        }
    }
    Ok(builder.root)
}

impl Builder {
    fn error(&self, pos: Pos, message: String) -> LoadError {
        LoadError {
            pos,
            key_path: self.path(),
            message,
        }
    }

    /// The dotted path of the place being read.
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq { items, .. } => path.push_str(&format!("[{}]", items.len())),
                Frame::Map {
                    key: Some((key, _)),
                    ..
                } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&cut(key));
                }
                Frame::Map { key: None, .. } => break,
            }
        }
        path
    }

    fn count_nodes(&mut self, count: usize, pos: Pos) -> Result<(), LoadError> {
        self.nodes = self.nodes.saturating_add(count);
        if self.nodes > MAX_NODES {
            return Err(self.error(
                pos,
                format!("too many YAML nodes (more than {MAX_NODES}, aliases expanded)"),
            ));
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, pos: Pos) -> Result<(), LoadError> {
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            return Err(self.error(pos, "a mapping key must be a scalar".to_owned()));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(pos, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.count_nodes(1, pos)?;
        self.stack.push(frame);
        Ok(())
    }

    /// A scalar read or a collection closed: remember its anchor, then attach it.
    fn finish_node(&mut self, node: Node, anchor: usize) -> Result<(), LoadError> {
        if !matches!(node.value, Value::Seq(_) | Value::Map(_)) {
            self.count_nodes(1, node.pos)?;
        }
        if anchor > 0 {
            let anchored = Anchored {
                count: node.count(),
                height: node.height(),
                node: node.clone(),
            };
            self.anchors.insert(anchor, anchored);
        }
        self.push(node)
    }

    /// An alias: a copy of the anchored node, within the depth and node limits.
    fn alias(&mut self, anchor: usize, pos: Pos) -> Result<(), LoadError> {
        let Some(anchored) = self.anchors.get(&anchor) else {
            return Err(self.error(pos, "alias to a node that is not complete yet".to_owned()));
        };
        let (count, height) = (anchored.count, anchored.height);
        let mut node = anchored.node.clone();
        if self.stack.len() + height > MAX_DEPTH {
            return Err(self.error(pos, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.count_nodes(count, pos)?;
        node.pos = pos;
        self.push(node)
    }

    fn push(&mut self, node: Node) -> Result<(), LoadError> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { key: None, .. }) => return self.push_key(node),
            Some(Frame::Map { entries, key, .. }) => {
                if let Some((key, key_pos)) = key.take() {
                    entries.push(Entry {
                        key,
                        key_pos,
                        value: node,
                    });
                }
            }
        }
        Ok(())
    }

    fn push_key(&mut self, node: Node) -> Result<(), LoadError> {
        let text = match node.value {
            Value::Null => String::new(),
            Value::Bool(_, text)
            | Value::Int(_, text)
            | Value::Float(_, text)
            | Value::Str(text) => text,
            Value::Seq(_) | Value::Map(_) => {
                return Err(self.error(node.pos, "a mapping key must be a scalar".to_owned()));
            }
        };
        let path = self.path();
        let Some(Frame::Map { key, seen, .. }) = self.stack.last_mut() else {
            return Ok(());
        };
        if let Some(first_line) = seen.get(&text) {
            let message = format!(
                "duplicate key {} (first at line {first_line})",
                excerpt(&text)
            );
            let key_path = if path.is_empty() {
                cut(&text)
            } else {
                format!("{path}.{}", cut(&text))
            };
            return Err(LoadError {
                pos: node.pos,
                key_path,
                message,
            });
        }
        seen.insert(text.clone(), node.pos.line);
        *key = Some((text, node.pos));
        Ok(())
    }
}

/// Types a scalar by the YAML 1.2 core schema: quoted text is a string, plain
/// text may be null, a boolean, an integer or a float.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    let forced_string = tag.is_some_and(|tag| tag.handle == CORE_SCHEMA && tag.suffix == "str");
    if style != ScalarStyle::Plain || forced_string {
        return Value::Str(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true, text.to_owned()),
        "false" | "False" | "FALSE" => return Value::Bool(false, text.to_owned()),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY, text.to_owned());
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY, text.to_owned()),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN, text.to_owned()),
        _ => {}
    }
    if let Some(int) = parse_int(text) {
        return match int {
            Some(value) => Value::Int(value, text.to_owned()),
            // An integer beyond i64: still a number, just not a usable integer.
            None => Value::Float(text.parse().unwrap_or(f64::INFINITY), text.to_owned()),
        };
    }
    if is_float(text)
        && let Ok(value) = text.parse::<f64>()
    {
        return Value::Float(value, text.to_owned());
    }
    Value::Str(text.to_owned())
}

/// `Some(Some(n))` for an integer that fits, `Some(None)` for one that does
/// not, `None` for text that is not an integer.
fn parse_int(text: &str) -> Option<Option<i64>> {
    if let Some(hex) = text.strip_prefix("0x") {
        return is_digits(hex, 16).then(|| i64::from_str_radix(hex, 16).ok());
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return is_digits(octal, 8).then(|| i64::from_str_radix(octal, 8).ok());
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    is_digits(digits, 10).then(|| text.parse().ok())
}

fn is_digits(text: &str, radix: u32) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_digit(radix))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (is_digits(whole, 10) && (fraction.is_empty() || is_digits(fraction, 10)))
                || (whole.is_empty() && is_digits(fraction, 10))
        }
        None => is_digits(mantissa, 10),
    };
    let exponent_ok = exponent.is_none_or(|exponent| {
        is_digits(exponent.strip_prefix(['-', '+']).unwrap_or(exponent), 10)
    });
    mantissa_ok && exponent_ok
}
