//! Python tools for tests (the MCP SDKs, pycasbin): each in its own venv under the target dir,
//! made once (a marker file says it is done; `make test` installs python3-venv).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Runs an install step; fails the test with its output if it fails.
pub fn install(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The python of a venv `name` holding `requirement` (e.g. `casbin==1.43.0`), made on first
/// use. Serialised so parallel tests do not race to build the same venv.
pub fn venv_with(name: &str, requirement: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = dir.join("bin/python");
    let marker = dir.join(".installed");
    if marker.exists() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&dir);
    install(
        Command::new("python3").arg("-m").arg("venv").arg(&dir),
        "python3 -m venv (make test installs python3-venv)",
    );
    install(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ]),
        &format!("pip install {requirement}"),
    );
    std::fs::write(&marker, requirement).expect("write the venv marker");
    python
}
