//! Where a dotted path of a procedure file stands: line and column, by
//! scanning the text.

use std::collections::HashMap;

// ---------------------------------------------------------------------------
// Line index: dotted path -> position, by scanning the text.
//
// serde_yaml_ng reports positions for its own errors but a parsed value
// carries none, so semantic issues find their line here. The scanner knows
// block-style YAML as procedure files are written: `key: value`, `key:`
// followed by a nested block, `- ` items (also `- key: value` and items at
// the same indentation as their key), one-line flow collections
// (`accept: [pdf, jpg]`, `name: {vi: …, en: …}`), comments, quoted keys,
// anchors and tags before values, and multi-line scalars (block `|`/`>`,
// folded plain or quoted), whose continuation lines are skipped. It does not
// follow aliases or `? ` complex keys, and inside flow collections it knows
// only the first level of the first line. A path it does not know falls back
// to its nearest known parent (`fields[3].max_count` -> `fields[3]`).
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
pub(super) struct LineIndex {
    /// Path -> (1-based line, 1-based column).
    pub(super) at: HashMap<String, (usize, usize)>,
    /// Keys written twice: (path, line, column, line of the first).
    pub(super) duplicates: Vec<(String, usize, usize, usize)>,
    /// Where the document starts (its first key), column 0.
    pub(super) start: (usize, usize),
}

impl LineIndex {
    pub(super) fn build(yaml: &str) -> Self {
        let mut scanner = Scanner::default();
        for (n, raw) in yaml.lines().enumerate() {
            let raw = if n == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            scanner.line(n + 1, raw);
        }
        let mut index = scanner.index;
        index.start = index
            .at
            .values()
            .min()
            .map_or((1, 0), |&(line, _)| (line, 0));
        index
    }

    fn record(&mut self, path: String, line: usize, column: usize) {
        if let Some(&(first, _)) = self.at.get(&path) {
            self.duplicates.push((path, line, column, first));
        } else {
            self.at.insert(path, (line, column));
        }
    }

    /// Position of `path`, or of its nearest known parent, or of the start.
    pub(super) fn locate(&self, path: &str) -> (usize, usize) {
        let mut p = path;
        loop {
            if let Some(&pos) = self.at.get(p) {
                return pos;
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p = &p[..cut],
                None => return self.start,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameKind {
    Map,
    Seq,
}

#[derive(Debug)]
pub(super) struct Frame {
    /// Column (0-based) of the keys or dashes of this collection.
    indent: usize,
    path: String,
    kind: FrameKind,
    next_item: usize,
}

#[derive(Debug, Default)]
pub(super) struct Scanner {
    index: LineIndex,
    stack: Vec<Frame>,
    /// A key or item whose value starts on a later line: (path, column).
    pending: Option<(String, usize)>,
    /// Skip lines indented deeper than this (continuation of a scalar).
    skip_deeper: Option<usize>,
}

impl Scanner {
    fn line(&mut self, no: usize, raw: &str) {
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let content = raw[indent..].trim_end();
        if content.is_empty() || content.starts_with('#') {
            return;
        }
        if let Some(limit) = self.skip_deeper {
            if indent > limit {
                return;
            }
            self.skip_deeper = None;
        }
        if indent == 0
            && (content.starts_with("---")
                || content.starts_with("...")
                || content.starts_with('%'))
        {
            return;
        }
        self.node(no, indent, content);
    }

    fn node(&mut self, no: usize, col: usize, content: &str) {
        let item = is_item(content);
        if let Some((path, at)) = self.pending.take()
            && (col > at || (col == at && item))
        {
            self.stack.push(Frame {
                indent: col,
                path,
                kind: if item { FrameKind::Seq } else { FrameKind::Map },
                next_item: 0,
            });
        }
        while let Some(top) = self.stack.last() {
            let leaves =
                top.indent > col || (top.indent == col && top.kind == FrameKind::Seq && !item);
            if !leaves {
                break;
            }
            self.stack.pop();
        }
        if item {
            self.item(no, col, content);
        } else if let Some((key, after)) = split_key(content) {
            self.key(no, col, content, &key, after);
        }
        // Anything else is a stray scalar line; nothing to index.
    }

    fn ensure(&mut self, col: usize, kind: FrameKind) {
        let ok = matches!(self.stack.last(), Some(t) if t.kind == kind && t.indent == col);
        if !ok {
            let path = self
                .stack
                .last()
                .map(|t| t.path.clone())
                .unwrap_or_default();
            self.stack.push(Frame {
                indent: col,
                path,
                kind,
                next_item: 0,
            });
        }
    }

    fn item(&mut self, no: usize, col: usize, content: &str) {
        self.ensure(col, FrameKind::Seq);
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        let path = format!("{}[{}]", top.path, top.next_item);
        top.next_item += 1;
        self.index.record(path.clone(), no, col + 1);
        let after = &content[1..];
        let spaces = after.len() - after.trim_start_matches(' ').len();
        let rest = &after[spaces..];
        let rest_col = col + 1 + spaces;
        if rest.is_empty() || rest.starts_with('#') {
            self.pending = Some((path, col));
        } else if is_item(rest) || split_key(rest).is_some() {
            let kind = if is_item(rest) {
                FrameKind::Seq
            } else {
                FrameKind::Map
            };
            self.stack.push(Frame {
                indent: rest_col,
                path,
                kind,
                next_item: 0,
            });
            self.node(no, rest_col, rest);
        } else {
            self.value(no, col, rest_col, rest, &path);
        }
    }

    fn key(&mut self, no: usize, col: usize, content: &str, key: &str, after: usize) {
        self.ensure(col, FrameKind::Map);
        let parent = self
            .stack
            .last()
            .map(|t| t.path.as_str())
            .unwrap_or_default();
        let path = if parent.is_empty() {
            key.to_string()
        } else {
            format!("{parent}.{key}")
        };
        self.index.record(path.clone(), no, col + 1);
        let rest = &content[after..];
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        let value_col = col + content[..after].chars().count() + spaces;
        let (value, value_col) = skip_properties(&rest[spaces..], value_col);
        if value.is_empty() || value.starts_with('#') {
            self.pending = Some((path, col));
        } else {
            self.value(no, col, value_col, value, &path);
        }
    }

    /// A value written on the line of its key or dash, at `value_col`.
    fn value(&mut self, no: usize, owner_col: usize, value_col: usize, value: &str, path: &str) {
        // Whatever is indented deeper on the next lines continues this value
        // (block scalar, folded plain or quoted scalar, multi-line flow).
        self.skip_deeper = Some(owner_col);
        if !(value.starts_with('[') || value.starts_with('{')) {
            return;
        }
        let is_seq = value.starts_with('[');
        for (n, (offset, text)) in flow_elements(value).into_iter().enumerate() {
            let column = value_col + offset + 1;
            if is_seq {
                self.index.record(format!("{path}[{n}]"), no, column);
            } else if let Some((key, _)) = split_key(&text) {
                self.index.record(format!("{path}.{key}"), no, column);
            }
        }
    }
}

pub(super) fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// Skips anchors (`&a`) and tags (`!working_days`) in front of a value.
pub(super) fn skip_properties(mut value: &str, mut col: usize) -> (&str, usize) {
    while value.starts_with('&') || value.starts_with('!') {
        let token = value.find(' ').unwrap_or(value.len());
        let rest = &value[token..];
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        col += value[..token].chars().count() + spaces;
        value = &rest[spaces..];
    }
    (value, col)
}

/// `key: …` -> (key, byte offset after the colon). Quoted keys are
/// unquoted; a line that is not a mapping entry gives `None`.
pub(super) fn split_key(content: &str) -> Option<(String, usize)> {
    let first = content.chars().next()?;
    if first == '"' || first == '\'' {
        let close = content[1..].find(first)? + 1;
        let after = &content[close + 1..];
        let spaces = after.len() - after.trim_start_matches(' ').len();
        let rest = &after[spaces..];
        let colon_end = rest.strip_prefix(':')?;
        if !(colon_end.is_empty() || colon_end.starts_with(' ')) {
            return None;
        }
        return Some((content[1..close].to_string(), close + 1 + spaces + 1));
    }
    if "[{#&*!|>%@`?,".contains(first) {
        return None;
    }
    let bytes = content.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && bytes[i - 1] == b' ' {
            return None;
        }
        if b == b':' && bytes.get(i + 1).is_none_or(|&n| n == b' ') {
            let key = content[..i].trim_end();
            return (!key.is_empty()).then(|| (key.to_string(), i + 1));
        }
    }
    None
}

/// The first-level elements of a one-line flow collection: (char offset,
/// text). Stops at the end of the line.
pub(super) fn flow_elements(value: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = value.chars().collect();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut quote = None;
    let mut current: Option<usize> = None;
    for (i, &ch) in chars.iter().enumerate() {
        if let Some(q) = quote {
            if ch == q {
                quote = None;
            }
            continue;
        }
        if depth == 1 && current.is_none() && !matches!(ch, ' ' | ',' | ']' | '}') {
            current = Some(i);
        }
        match ch {
            '"' | '\'' => quote = Some(ch),
            '[' | '{' => depth += 1,
            ']' | '}' | ',' => {
                if depth == 1
                    && let Some(start) = current.take()
                {
                    let text: String = chars[start..i].iter().collect();
                    out.push((start, text.trim_end().to_string()));
                }
                if ch != ',' {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}
