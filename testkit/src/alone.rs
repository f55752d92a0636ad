//! A test that needs a process of its own (it installs a global log capture and asserts on
//! everything captured) runs in the one test binary all the same: it starts the binary again
//! with only itself selected, and passes when that run does.

use std::process::Command;

/// Set in the process `alone!` starts: the one test it runs.
const ALONE: &str = "WAITROOM_TEST_ALONE";

/// In a test: `if !alone!(its_fn_name) { return; }`. The first call starts this test binary
/// again with only this test selected and asserts it passed (false: the caller is done); in
/// that process it returns true, and the test goes on, alone.
#[macro_export]
macro_rules! alone {
    ($test:ident) => {
        $crate::alone::rerun(module_path!(), stringify!($test))
    };
}

/// See `alone!`. `module` is the test's `module_path!()`, whose first segment (the crate) is
/// not part of the name the test harness knows it by.
pub fn rerun(module: &str, test: &str) -> bool {
    let name = match module.split_once("::") {
        Some((_, path)) => format!("{path}::{test}"),
        None => test.to_string(),
    };
    if std::env::var(ALONE).as_deref() == Ok(name.as_str()) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, &name)
        .output()
        .expect("the test binary starts again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown with the test's own output (on failure, or with --nocapture).
    println!("--- {name}, in a process of its own ---\n{stdout}\n{stderr}");
    assert!(out.status.success(), "{name} failed in its own process");
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run in its own process"
    );
    false
}
