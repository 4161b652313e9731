//! The parsed TOML document the site and user parsers walk: `toml`'s borrowed,
//! spanned tree. Every key and value keeps its byte span, so every diagnostic can
//! point at file:line:col; strings without escapes borrow from the source, so a
//! 10,000-entry file is parsed without a string allocation per key or value.

use std::ops::Range;
pub(crate) use toml_spanned::de::{DeTable as Table, DeValue as Value};
pub(crate) use toml_spanned::Spanned;

/// A value with its span.
pub(crate) type Item<'i> = Spanned<Value<'i>>;

/// A syntax error: the parser's message and where it points.
pub(crate) struct SyntaxError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// Parse a whole document. On invalid TOML, the problem earliest in the file (the
/// parser may find several, and reports syntax before structure).
pub(crate) fn parse(src: &str) -> Result<Table<'_>, SyntaxError> {
    let (table, errors) = Table::parse_recoverable(src);
    let Some(e) = errors
        .iter()
        .min_by_key(|e| e.span().map_or(usize::MAX, |s| s.start))
    else {
        return Ok(table.into_inner());
    };
    let span = e.span();
    let mut message = e.message().trim().replace('\n', "; ");
    // The parser says only "duplicate key"; name it, as written but unquoted, so the
    // line reads like the file (`duplicate key `alice``).
    if message == "duplicate key" {
        if let Some(raw) = span.clone().and_then(|s| src.get(s)) {
            message = format!("duplicate key `{}`", unquote(raw));
        }
    }
    Err(SyntaxError { span, message })
}

/// A key's text without its quotes when it has no escapes (every real name); with
/// escapes, as written.
fn unquote(raw: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = raw.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            if q == '\'' || !inner.contains('\\') {
                return inner;
            }
        }
    }
    raw
}

/// Whether an array is an array of tables (`[[name]]`) rather than an inline list:
/// the parser gives an array of tables the span of its first header, which is also
/// its first element's span; an inline array's span starts at its own `[`, before its
/// first element.
pub(crate) fn is_array_of_tables(item: &Item) -> bool {
    match item.get_ref() {
        Value::Array(a) => a
            .first()
            .is_some_and(|t| matches!(t.get_ref(), Value::Table(_)) && t.span() == item.span()),
        _ => false,
    }
}

/// Whether a table was opened by its own `[header]` (its span is the header's), as
/// opposed to an inline table, a dotted key or a table implied by a longer header.
pub(crate) fn is_header_table(item: &Item, src: &str) -> bool {
    matches!(item.get_ref(), Value::Table(_))
        && src.as_bytes().get(item.span().start) == Some(&b'[')
}

/// What a value is, for messages ("found a list").
pub(crate) fn describe(item: &Item) -> &'static str {
    match item.get_ref() {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) if is_array_of_tables(item) => "an array of tables",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let src = "a = [[1]]\nb = [{ x = 1 }]\n[[c]]\nx = 1\n[[c]]\n[d]\ne.f = 1\n";
        let t = parse(src).ok().unwrap();
        let get = |k: &str| t.iter().find(|(n, _)| n.get_ref() == k).unwrap().1;
        assert_eq!(describe(get("a")), "a list");
        assert_eq!(describe(get("b")), "a list");
        assert_eq!(describe(get("c")), "an array of tables");
        assert!(is_header_table(get("d"), src));
        let Value::Table(d) = get("d").get_ref() else {
            panic!()
        };
        assert!(!is_header_table(d.iter().next().unwrap().1, src));
        match parse("x = 1\n\"x\" = 2\n") {
            Err(e) => assert_eq!(e.message, "duplicate key `x`"),
            Ok(_) => panic!("duplicate accepted"),
        }
        assert_eq!(unquote("'a\\b'"), "a\\b");
        assert_eq!(unquote("\"a\\u0062\""), "\"a\\u0062\"");
    }
}
