//! PEP 508 requirement parsing that never panics.
//!
//! Fuzzing our requirement file reader found three panics in pep508_rs 0.9: a package name or
//! an extra name that ends in `.`, `-` or `_` before another character (`foo.*`, `p[0-];`),
//! and byte-slicing inside a multi-byte character. Requirement strings reach us from hostile
//! places (an index's metadata), so every parse goes through [`parse`]: it rejects those
//! shapes, and non-ASCII text (PEP 508 names, versions and markers are ASCII in practice),
//! with an ordinary error, and turns any panic left in the parser into an error too. Marker
//! expressions are parsed recursively, so parentheses nested deeper than [`MAX_NESTING`]
//! are refused before they can overflow the stack (also found by fuzzing).
//!
//! It must not accept more than pep508_rs does, nor judge what a requirement asks for (URLs,
//! editables): its callers decide what they allow.

use std::str::FromStr;

use pep508_rs::Requirement;

/// Deeper than any real marker; far below what overflows the parser's stack.
pub const MAX_NESTING: usize = 32;

/// The deepest parenthesis nesting outside quoted strings.
fn nesting(input: &str) -> usize {
    let (mut depth, mut max, mut quote) = (0usize, 0usize, None);
    for c in input.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => {
                depth += 1;
                max = max.max(depth);
            }
            (None, ')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

fn ends_in_separator(name: &str) -> bool {
    name.ends_with(['.', '-', '_'])
}

/// Why a requirement string was refused: one line, naming the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Pep508Error(String);

/// A requirement that cannot be parsed is always the fault of whoever wrote it.
impl bitpoll_error_class::Classify for Pep508Error {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

/// Parses one PEP 508 requirement; the error is one line.
pub fn parse(input: &str) -> Result<Requirement, Pep508Error> {
    parse_inner(input).map_err(Pep508Error)
}

fn parse_inner(input: &str) -> Result<Requirement, String> {
    if let Some(c) = input.chars().find(|c| !c.is_ascii()) {
        return Err(format!("non-ASCII character {c:?} in a requirement"));
    }
    if nesting(input) > MAX_NESTING {
        return Err(format!(
            "markers nested deeper than {MAX_NESTING} parentheses"
        ));
    }
    let trimmed = input.trim_start();
    let name_len = trimmed
        .find(|c: char| !is_name_char(c))
        .unwrap_or(trimmed.len());
    let (name, rest) = trimmed.split_at(name_len);
    if !rest.is_empty() && ends_in_separator(name) {
        return Err(format!(
            "package name `{name}` must end with a letter or digit"
        ));
    }
    if let Some(extras) = rest.trim_start().strip_prefix('[') {
        let extras = extras.split(']').next().unwrap_or(extras);
        for extra in extras.split(',') {
            let extra = extra.trim();
            let token_len = extra
                .find(|c: char| !is_name_char(c))
                .unwrap_or(extra.len());
            if ends_in_separator(&extra[..token_len]) {
                return Err(format!(
                    "extra name `{extra}` must end with a letter or digit"
                ));
            }
        }
    }
    match std::panic::catch_unwind(|| Requirement::from_str(input)) {
        Ok(parsed) => {
            parsed.map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string())
        }
        Err(_) => Err(format!("the PEP 508 parser failed on `{input}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_ending_in_a_separator_are_errors_not_panics() {
        for input in ["9B.*", "foo-[x]", "foo_ ; python_version > '3'", "a. >=1"] {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains("must end with"), "{input}: {err}");
        }
        assert!(parse("foo.").is_err());
    }

    #[test]
    fn extras_ending_in_a_separator_are_errors_not_panics() {
        for input in ["p[0-];", "p[a, b_]", "p [x.] >= 1", "p[ok,-]"] {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains("extra name"), "{input}: {err}");
        }
    }

    #[test]
    fn non_ascii_is_an_error_not_a_panic() {
        let err = parse("D;''>'' z0[0dg\u{e69a6}").unwrap_err().to_string();
        assert!(err.contains("non-ASCII"), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!(
            "a ; {}python_version > '3'{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("nested deeper"));
        let fine = "a ; (python_version > '3' and (sys_platform == 'linux' or os_name == ')'))";
        assert!(parse(fine).is_ok());
    }

    #[test]
    fn ordinary_requirements_parse() {
        let r = parse("Django_Pipeline[sass, x-y] >=3 ; python_version >= '3.9'").unwrap();
        assert_eq!(r.name.to_string(), "django-pipeline");
        assert_eq!(r.extras.len(), 2);
        assert!(parse("foo >>> 1").is_err());
    }
}
