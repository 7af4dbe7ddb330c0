//! `cargo xtask conformance`: runs the packse scenario suite and prints per category how many
//! passed as packse expects, passed with their documented per-target outcome, failed, or are
//! excluded by name, then the reason for every scenario not in the first column. Exits 1 when a
//! scenario fails, as the test target does.

use bitpoll_tests::conformance::{self, Outcome};

pub fn run(args: &[String]) -> i32 {
    if let Some(arg) = args.first() {
        eprintln!("cargo xtask conformance: unexpected argument `{arg}`");
        return 2;
    }
    let dir = conformance::scenarios_dir();
    let scenarios = match conformance::load_all(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot read the scenarios in {}: {e}", dir.display());
            return 2;
        }
    };
    let results = conformance::run_all(&scenarios);
    print!("{}", conformance::report(&results));
    let failed = results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Failed(_)));
    i32::from(failed)
}
