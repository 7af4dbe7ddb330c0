//! Project automation, run as `cargo xtask <task>` (see `.cargo/config.toml`).
//!
//! Tasks live in their own modules; this file only dispatches.

mod bench;
mod conformance;
mod fuzz;
mod test;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        Some("conformance") => conformance::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("test") => test::run(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <task>\n\ntasks:\n  bench        bitpoll-lock against uv, side by side (time and peak memory)\n  conformance  the packse resolver scenarios, per category\n  fuzz [SECS]  every fuzz target for SECS seconds (default 60)\n  test         formatting, Nix lint, and every test (what CI runs)");
            2
        }
    };
    std::process::exit(code);
}
