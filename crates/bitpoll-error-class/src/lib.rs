//! Whose fault a failure is: the one classification every library error of the project
//! gives, so the command line turns any failure into an exit code without knowing which
//! crate it came from.
//!
//! Every public error type implements [`Classify`]; an error that wraps another asks the
//! wrapped one rather than deciding again, so a class is decided where the failure is
//! understood. This crate must not know any other crate of the project nor decide exit
//! codes: the numbers belong to the command line.

/// What a caller acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input (a file, an option, a requirement) asks for something that does not exist
    /// or cannot work; running again without changing it fails again.
    BadInput,
    /// The requirements have no solution: they contradict each other or what the indexes
    /// hold.
    NoSolution,
    /// The network, the index or a tool of the machine failed; trying again later may work.
    Unavailable,
    /// A check ran and found what it looks for (a hash that does not match, say).
    CheckFailed,
}

/// An error that says its class.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// The standard library's I/O errors come from the machine, not the input: a path the input
/// names that cannot be read is reported by the error that wraps it, with its own class.
impl Classify for std::io::Error {
    fn class(&self) -> ErrorClass {
        ErrorClass::Unavailable
    }
}
