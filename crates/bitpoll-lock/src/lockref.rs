//! Reading a lock given as a file or as a git revision (`HEAD~1`, `origin/main`), for the
//! commands that compare or inspect locks.

use std::path::Path;
use std::process::Command;

use bitpoll_lockfile::Lock;

use crate::exit::bad_input;

/// `spec` is a path to a lock file, or a git revision whose `lock_path` is read.
pub fn load(spec: &str, lock_path: &Path) -> crate::exit::Result<(String, Lock)> {
    let as_path = Path::new(spec);
    if as_path.is_file() {
        let lock = Lock::read(as_path)?;
        return Ok((spec.to_string(), lock));
    }
    // `git show REV:./path` resolves the path relative to the working directory.
    let object = format!("{spec}:./{}", lock_path.display());
    let out = Command::new("git")
        .args(["show", &object])
        .output()
        .map_err(|e| {
            bad_input(anyhow::Error::new(e).context("running git to read a lock from a revision"))
        })?;
    if !out.status.success() {
        return Err(bad_input(anyhow::anyhow!(
            "`{spec}` is neither a lock file nor a git revision with {}: {}",
            lock_path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let label = format!("{spec}:{}", lock_path.display());
    let lock = Lock::from_slice(Path::new(&label), &out.stdout)?;
    Ok((label, lock))
}
