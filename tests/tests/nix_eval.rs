//! Runs the Nix tests in `tests/nix/` with the real evaluator (`nix-instantiate`).
//!
//! The evaluator comes from the Debian package `nix-bin`, which CI installs. Without
//! it these tests fail rather than pass silently; `BITPOLL_SKIP_NIX=1` skips them on
//! purpose. The module and flake tests also need `NIXPKGS_LIB` (a nixpkgs `lib`
//! directory; `cargo xtask test` and CI set it). A skip goes through
//! [`bitpoll_tests::skip`], so it is counted as one, and fails under CI. The fetch
//! test needs the package index and is `#[ignore]`d.
//!
//! A test file evaluates to a summary (`{ suite, passed, refusals }`) or throws a
//! message listing its failed checks. Inside Nix a refusal can only be seen to throw,
//! so every refusal the summary lists is evaluated again on its own here, and the
//! evaluator's error must contain the message the test expects.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use bitpoll_tests::skip;
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the repository root")
        .to_path_buf()
}

fn nix_tests() -> PathBuf {
    repo_root().join("tests").join("nix")
}

/// Whether the Nix tests should run. Panics when the evaluator is missing and
/// nobody asked to skip: a missing tool must not look like a passing test.
fn nix_enabled() -> bool {
    if env::var("BITPOLL_SKIP_NIX").as_deref() == Ok("1") {
        skip("BITPOLL_SKIP_NIX=1");
        return false;
    }
    match Command::new("nix-instantiate").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!(
            "nix-instantiate --version failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => panic!(
            "nix-instantiate is not available ({err}). Install the evaluator with \
             `apt-get install -y nix-bin` (CI does), or set BITPOLL_SKIP_NIX=1 to skip the Nix tests"
        ),
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"))
}

/// `nix-instantiate --eval --strict --json FILE ARGS...`; panics with the
/// evaluator's own message when evaluation fails.
fn eval_json<I, S>(file: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("nix-instantiate");
    cmd.args(["--eval", "--strict", "--json"])
        .arg(file)
        .args(args);
    let out = run(&mut cmd);
    if !out.status.success() {
        panic!(
            "evaluating {} failed:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("the evaluator prints UTF-8 JSON")
}

/// Evaluates a test file of `tests/nix` with `args`, checks that its summary names
/// `suite` and counts its checks, then checks every refusal it lists. Returns the
/// summary.
fn run_suite(file: &str, suite: &str, args: &[(&str, &OsStr)]) -> Value {
    let path = nix_tests().join(file);
    let mut base: Vec<&OsStr> = Vec::new();
    for (name, value) in args {
        base.extend([OsStr::new("--argstr"), OsStr::new(name), value]);
    }
    // Files with refusals take `refusal`; the evaluator passes an argument only to a
    // function that declares it, so this is harmless for the others.
    let summary_args = base
        .iter()
        .copied()
        .chain(["--arg", "refusal", "null"].map(OsStr::new));
    let json = eval_json(&path, summary_args);
    let value: Value = serde_json::from_str(&json)
        .unwrap_or_else(|err| panic!("{file} printed no JSON ({err}): {json}"));
    let summary = value.get("checks").unwrap_or(&value);
    check_summary(file, suite, summary, &base);
    value
}

fn check_summary(file: &str, suite: &str, summary: &Value, args: &[&OsStr]) {
    assert_eq!(
        summary["suite"], suite,
        "{file}: unexpected summary {summary}"
    );
    let passed = summary["passed"].as_u64().unwrap_or(0);
    assert!(passed > 0, "{file}: no check ran: {summary}");
    let refusals = summary["refusals"]
        .as_array()
        .unwrap_or_else(|| panic!("{file}: the summary lists no refusals: {summary}"));
    for refusal in refusals {
        let (Some(name), Some(message)) = (refusal["name"].as_str(), refusal["message"].as_str())
        else {
            panic!("{file}: malformed refusal {refusal}");
        };
        expect_refusal(file, args, name, message);
    }
    eprintln!(
        "{suite}: {passed} checks passed, {} of them refusals whose messages matched",
        refusals.len()
    );
}

/// Evaluates the refusal `name` of `file` on its own: it must fail, and with an error
/// that contains `message` (not some other error on the way there).
fn expect_refusal(file: &str, args: &[&OsStr], name: &str, message: &str) {
    let out = run(Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(nix_tests().join(file))
        .args(args)
        .args(["--argstr", "refusal", name]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{file}: \"{name}\" was not refused; it evaluated to {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(message),
        "{file}: \"{name}\" failed, but not with the expected refusal\n\
         expected a message containing: {message}\nthe evaluator said:\n{stderr}"
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = env::temp_dir().join(format!("bitpoll-nix-{name}-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn nix_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name.starts_with('.')
                || name == "target"
                || name == "node_modules"
                || name == "result"
            {
                continue;
            }
            nix_files(&path, found);
        } else if name.ends_with(".nix") {
            found.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    if !nix_enabled() {
        return;
    }
    let mut files = Vec::new();
    nix_files(&repo_root(), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("nix/lock.nix")),
        "no .nix files found under {}",
        repo_root().display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let out = run(Command::new("nix-instantiate").arg("--parse").arg(file));
        if !out.status.success() {
            failures.push(format!(
                "{}:\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "files that do not parse:\n{}",
        failures.join("\n")
    );
    eprintln!("every_nix_file_parses: {} files parse", files.len());
}

#[test]
fn lock_reader_on_fixture() {
    if !nix_enabled() {
        return;
    }
    run_suite("lock-fixture.nix", "lock-fixture", &[]);
}

#[test]
fn lock_reader_on_committed_lock() {
    if !nix_enabled() {
        return;
    }
    let lock = repo_root().join("lock").join("bitpoll.lock.json");
    if !lock.exists() {
        skip(format!("{} does not exist yet", lock.display()));
        return;
    }
    run_suite(
        "lock-repo.nix",
        "lock-repo",
        &[("lockFile", lock.as_os_str())],
    );
}

#[test]
fn python_environment_with_stand_ins() {
    if !nix_enabled() {
        return;
    }
    run_suite("python-env.nix", "python-env", &[]);
}

#[test]
fn settings_render_and_read_back() {
    if !nix_enabled() {
        return;
    }
    let dir = temp_dir("settings");
    // Plain ASCII, so finding it in the evaluator's JSON needs no unescaping; the
    // Python check looks for both secrets in the decoded text as well.
    let secret_key = "BitpollSecretKeyNeverInTheStore0123456789";
    fs::write(dir.join("secret_key"), format!("{secret_key}\n")).unwrap();
    fs::write(dir.join("mail_password"), "p\"w\\ßörd with spaces\n").unwrap();

    let value = run_suite(
        "settings.nix",
        "settings",
        &[("secretDir", dir.as_os_str())],
    );
    let json = value.to_string();
    assert!(
        !json.contains(secret_key),
        "the secret key ended up in the rendered settings"
    );

    let rendered = dir.join("rendered.json");
    fs::write(&rendered, &json).unwrap();
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = run(Command::new(&python)
        .arg(nix_tests().join("settings_check.py"))
        .arg(&rendered));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rendered settings do not read back:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("settings_render_and_read_back: {}", stdout.trim());

    // The package's settings_local.py must apply the rendered file on top of its
    // own defaults and read the keys from outside the store.
    let out = run(Command::new(&python)
        .arg(nix_tests().join("settings_local_check.py"))
        .arg(&rendered)
        .arg(repo_root().join("nix").join("settings_local.py")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "settings_local.py misbehaves:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("settings_render_and_read_back: {}", stdout.trim());
    let _ = fs::remove_dir_all(&dir);
}

/// The container image's settings file (nix/container-settings.nix), executed with
/// the environment a container would have.
#[test]
fn container_settings_read_back() {
    if !nix_enabled() {
        return;
    }
    let expr = format!(
        "import {} {{ }}",
        repo_root().join("nix/container-settings.nix").display()
    );
    let out = run(
        Command::new("nix-instantiate").args(["--eval", "--strict", "--json", "--expr", &expr])
    );
    assert!(
        out.status.success(),
        "rendering the container settings failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text: String = serde_json::from_slice(&out.stdout)
        .expect("the evaluator prints the settings as a JSON string");
    let dir = temp_dir("container-settings");
    let path = dir.join("settings.py");
    fs::write(&path, text).expect("write the rendered settings");
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = run(Command::new(python)
        .arg(nix_tests().join("container_settings_check.py"))
        .arg(&path));
    let _ = fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "the container settings misbehave:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `lib` directory of a nixpkgs checkout, from `NIXPKGS_LIB`, or None after
/// recording the skip.
fn nixpkgs_lib() -> Option<PathBuf> {
    let Some(lib) = env::var_os("NIXPKGS_LIB").filter(|v| !v.is_empty()) else {
        skip("NIXPKGS_LIB is unset (point it at a nixpkgs `lib` directory to run this test)");
        return None;
    };
    let lib = PathBuf::from(lib);
    assert!(
        lib.join("default.nix").exists(),
        "NIXPKGS_LIB={} has no default.nix; it must be the `lib` directory of nixpkgs",
        lib.display()
    );
    Some(lib)
}

/// Runs shellcheck on the scripts a test file lists (`scripts`: name -> text). The
/// flake builds them with writeShellApplication, which fails on any shellcheck
/// finding; these tests build nothing, so they check here.
fn shellcheck_scripts(file: &str, value: &Value) {
    let scripts = value["scripts"]
        .as_object()
        .unwrap_or_else(|| panic!("{file} lists no scripts"));
    assert!(!scripts.is_empty(), "{file} lists no scripts");
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("shellcheck is not installed (Debian: apt-get install shellcheck)");
        return;
    }
    let dir = temp_dir("scripts");
    let mut findings = Vec::new();
    for (name, text) in scripts {
        let path = dir.join(name);
        fs::write(&path, text.as_str().expect("a script is text"))
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let out = run(Command::new("shellcheck").arg("--shell=bash").arg(&path));
        if !out.status.success() {
            findings.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    let _ = fs::remove_dir_all(&dir);
    assert!(
        findings.is_empty(),
        "shellcheck objects to scripts of {file}:\n{}",
        findings.join("\n")
    );
    eprintln!("{file}: {} scripts pass shellcheck", scripts.len());
}

fn eval_with_scripts(file: &str, suite: &str) {
    if !nix_enabled() {
        return;
    }
    let Some(lib) = nixpkgs_lib() else {
        return;
    };
    let value = run_suite(file, suite, &[("nixpkgsLib", lib.as_os_str())]);
    shellcheck_scripts(file, &value);
}

#[test]
fn module_evaluates_with_nixpkgs_lib() {
    eval_with_scripts("module.nix", "module");
}

#[test]
fn flake_outputs_with_nixpkgs_lib() {
    eval_with_scripts("flake.nix", "flake");
}

/// Every index artifact of the committed lock for one system, fetched through Nix.
#[test]
#[ignore = "talks to the real index"]
fn fetch_locked_artifacts_through_nix() {
    if !nix_enabled() {
        return;
    }
    let lock = repo_root().join("lock").join("bitpoll.lock.json");
    assert!(lock.exists(), "{} does not exist", lock.display());
    let system = env::var("BITPOLL_NIX_FETCH_SYSTEM").unwrap_or_else(|_| "x86_64-linux".into());
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = run(Command::new(&python)
        .arg(nix_tests().join("fetch_check.py"))
        .arg(&lock)
        .arg(&system));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fetching locked artifacts failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("fetch_locked_artifacts_through_nix: {}", stdout.trim());
}
