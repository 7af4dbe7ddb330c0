//! PEP 508 requirement parsing that never panics.
//!
//! pep508_rs 0.9 panics (an `expect` in its name parser) on a name that ends in `.`, `-` or
//! `_` when another character follows, such as `foo.*` — found by fuzzing our requirement file
//! reader. Requirement strings reach us from hostile places (an index's metadata), so every
//! parse goes through [`parse`], which rejects that shape with an ordinary error first.

use std::str::FromStr;

use pep508_rs::Requirement;

/// Parses one PEP 508 requirement; the error is one line.
pub fn parse(input: &str) -> Result<Requirement, String> {
    let trimmed = input.trim_start();
    let name_len = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .unwrap_or(trimmed.len());
    let name = &trimmed[..name_len];
    if name_len < trimmed.len() && name.ends_with(['.', '-', '_']) {
        return Err(format!(
            "package name `{name}` must end with a letter or digit"
        ));
    }
    Requirement::from_str(input)
        .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_ending_in_a_separator_are_errors_not_panics() {
        for input in ["9B.*", "foo-[x]", "foo_ ; python_version > '3'", "a. >=1"] {
            let err = parse(input).unwrap_err();
            assert!(err.contains("must end with"), "{input}: {err}");
        }
        assert!(parse("foo.").is_err());
    }

    #[test]
    fn ordinary_requirements_parse() {
        let r = parse("Django_Pipeline[sass] >=3 ; python_version >= '3.9'").unwrap();
        assert_eq!(r.name.to_string(), "django-pipeline");
        assert!(parse("foo >>> 1").is_err());
    }
}
