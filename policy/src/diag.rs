//! Diagnostics: every problem in a policy file, with file, line and column.
//!
//! Positions come from the TOML parser's byte spans (`toml`'s `DeTable` keeps a span for
//! every key and value of a parsed document) and are turned into 1-based
//! line:column here; the column counts characters, not bytes, so an editor lands on
//! the right spot in a line with non-ASCII user names.

use std::fmt;

/// How bad a problem is: errors stop a file from taking effect, warnings do not
/// (unless `--strict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem at one place. `line`/`col` are 1-based; 0 means "the file as a whole"
/// (it could not be read, or its permissions are unsafe).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(file, pos, Severity::Error, message)
    }
    pub fn warning(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(file, pos, Severity::Warning, message)
    }
    fn new(file: &str, pos: Pos, severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: pos.line,
            col: pos.col,
            severity,
            message: message.into(),
        }
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.file, self.severity, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.col, self.severity, self.message
            )
        }
    }
}

/// All problems found in one or more files. It is the error type of every parse and
/// load: a non-empty `Diagnostics` holding at least one error means "this file did
/// not take effect". Displayed one diagnostic per line.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Diagnostics(Vec::new())
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }
    /// Order by position so the report reads top to bottom.
    pub(crate) fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.file, a.line, a.col, a.severity).cmp(&(&b.file, b.line, b.col, b.severity))
        });
    }
}

impl std::ops::Deref for Diagnostics {
    type Target = Vec<Diagnostic>;
    fn deref(&self) -> &Vec<Diagnostic> {
        &self.0
    }
}

impl std::ops::DerefMut for Diagnostics {
    fn deref_mut(&mut self) -> &mut Vec<Diagnostic> {
        &mut self.0
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A 1-based position in a policy file; `Pos::FILE` (0:0) is the file as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const FILE: Pos = Pos { line: 0, col: 0 };
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Byte offset → line:col. Built once per file (one pass for line starts). Parsers ask
/// in file order, so a lookup first tries the line of the previous answer and the
/// next one before a binary search; a column is a byte count when the line prefix is
/// ASCII and a character count otherwise.
pub(crate) struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
    last: std::cell::Cell<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(src: &'a str) -> Self {
        let mut starts = Vec::with_capacity(src.len() / 16 + 1);
        starts.push(0);
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex {
            src,
            starts,
            last: std::cell::Cell::new(0),
        }
    }

    /// Index of the line holding `offset` (which is at most `src.len()`).
    fn line_of(&self, offset: usize) -> usize {
        let within = |l: usize| {
            self.starts[l] <= offset && self.starts.get(l + 1).is_none_or(|&next| offset < next)
        };
        let hint = self.last.get();
        let line = if within(hint) {
            hint
        } else if hint + 1 < self.starts.len() && within(hint + 1) {
            hint + 1
        } else {
            self.starts.partition_point(|&s| s <= offset) - 1
        };
        self.last.set(line);
        line
    }

    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.src.len());
        let line = self.line_of(offset);
        let start = self.starts[line];
        // Clamp to a char boundary: spans from the parser always are, but be safe.
        let mut end = offset;
        while !self.src.is_char_boundary(end) {
            end -= 1;
        }
        let prefix = &self.src.as_bytes()[start..end];
        let col = if prefix.is_ascii() {
            prefix.len()
        } else {
            self.src[start..end].chars().count()
        } + 1;
        Pos {
            line: line as u32 + 1,
            col: col as u32,
        }
    }

    pub fn span(&self, span: Option<std::ops::Range<usize>>) -> Option<Pos> {
        span.map(|r| self.pos(r.start))
    }
}

/// "did you mean": the closest candidate by Damerau–Levenshtein distance, compared
/// case-insensitively, if it is close enough to be a plausible typo.
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let lw = word.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = strsim::damerau_levenshtein(&lw, &c.to_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let limit = match lw.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        6..=9 => 2,
        _ => 3,
    };
    (d <= limit && c != word).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_characters() {
        let src = "a = 1\nbé = \"x\"\n\nz";
        let li = LineIndex::new(src);
        assert_eq!(li.pos(0), Pos { line: 1, col: 1 });
        assert_eq!(li.pos(6), Pos { line: 2, col: 1 });
        let off = src.find('=').unwrap();
        assert_eq!(li.pos(off), Pos { line: 1, col: 3 });
        let off2 = src[6..].find('=').unwrap() + 6;
        assert_eq!(li.pos(off2), Pos { line: 2, col: 4 });
        assert_eq!(li.pos(src.len()), Pos { line: 4, col: 2 });
        // Out of order, as error paths ask.
        assert_eq!(li.pos(off2), Pos { line: 2, col: 4 });
        assert_eq!(li.pos(0), Pos { line: 1, col: 1 });
        assert_eq!(li.pos(src.len() - 1), Pos { line: 4, col: 1 });
        assert_eq!(li.pos(src.len() - 2), Pos { line: 3, col: 1 });
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("CONTRL", ["READ", "CONTROL", "ALL"]),
            Some("CONTROL")
        );
        assert_eq!(suggest("pasue", ["pause", "play"]), Some("pause"));
        assert_eq!(suggest("xyzzy", ["pause", "play"]), None);
        assert_eq!(suggest("control", ["CONTROL"]), Some("CONTROL"));
    }

    #[test]
    fn display_format() {
        let d = Diagnostic::error("site.toml", Pos { line: 3, col: 7 }, "boom");
        assert_eq!(d.to_string(), "site.toml:3:7: error: boom");
        let ds = Diagnostics(vec![d.clone(), d]);
        assert_eq!(ds.to_string().lines().count(), 2);
    }
}
