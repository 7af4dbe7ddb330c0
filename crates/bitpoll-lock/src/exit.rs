//! Exit codes (ARCHITECTURE.md, "Constraints"): 0 success, 1 a failed check, 2 bad usage,
//! bad input or no solution, 3 network or index failure.
//!
//! Every library error says its class ([`Classify`]); a [`Failure`] keeps the class of the
//! error it was made from, so the exit code is asked once, of the error itself, and `?` on an
//! error that has no class does not compile.

use std::fmt::Display;

use bitpoll_error_class::{Classify, ErrorClass};

/// A failed command: the error to print and whose fault it is.
#[derive(Debug)]
pub struct Failure {
    class: ErrorClass,
    error: anyhow::Error,
}

pub type Result<T> = std::result::Result<T, Failure>;

impl<E: Classify + std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            class: e.class(),
            error: anyhow::Error::new(e),
        }
    }
}

impl Failure {
    pub fn new(class: ErrorClass, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            class,
            error: error.into(),
        }
    }

    pub fn code(&self) -> u8 {
        match self.class {
            ErrorClass::CheckFailed => 1,
            ErrorClass::BadInput | ErrorClass::NoSolution => 2,
            ErrorClass::Unavailable => 3,
        }
    }

    /// The error and its causes on one line, leaving out a cause whose text the message
    /// already contains (our library errors name their source in their own message).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for cause in self.error.chain() {
            let text = cause.to_string();
            if !out.contains(&text) {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(&text);
            }
        }
        out
    }
}

/// The user's input is wrong, in the command line's own words.
pub fn bad_input(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(ErrorClass::BadInput, e)
}

/// Something of the machine failed (an output that cannot be written, say).
pub fn unavailable(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(ErrorClass::Unavailable, e)
}

/// `anyhow::Context` for failures: a message added in front keeps the class.
pub trait Context<T> {
    fn with_context<C: Display + Send + Sync + 'static>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Failure>> Context<T> for std::result::Result<T, E> {
    fn with_context<C: Display + Send + Sync + 'static>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| {
            let failure = e.into();
            Failure {
                class: failure.class,
                error: failure.error.context(f()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitpoll_client::ClientError;

    fn through_question_mark<E: Into<Failure>>(e: E) -> Result<()> {
        Err(e.into())
    }

    #[test]
    fn the_class_of_the_error_decides_the_code_through_wrappers_and_context() {
        let unavailable = ClientError::Status {
            url: "http://127.0.0.1:1/simple/x/".into(),
            status: 503,
        };
        // The resolver's error asks the source's; a message in front changes nothing.
        let err = through_question_mark(bitpoll_resolver::ResolveError::Source(unavailable.into()))
            .with_context(|| "resolving x86_64-linux")
            .unwrap_err();
        assert_eq!(err.code(), 3);
        assert!(
            err.render().starts_with("resolving x86_64-linux: "),
            "{}",
            err.render()
        );

        let none = bitpoll_resolver::ResolveError::NoSolution {
            target: "x86_64-linux".into(),
            explanation: "a needs b>=2, which does not exist".into(),
        };
        assert_eq!(through_question_mark(none).unwrap_err().code(), 2);
        let missing = ClientError::NotFound {
            package: "nope".into(),
        };
        assert_eq!(through_question_mark(missing).unwrap_err().code(), 2);
        assert_eq!(bad_input(anyhow::anyhow!("--python 3")).code(), 2);
    }
}
