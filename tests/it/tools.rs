//! The tools behave like the tools people know: `--help` and `--version` print to
//! stdout and exit 0, a bad argument exits 2 with a short message on stderr
//! (`mailhooks-cli`, with its subcommands, in `cli.rs`).

use std::process::{Command, Output};

fn run(binary: &str, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"))
}

fn binaries() -> Vec<&'static str> {
    vec![
        env!("CARGO_BIN_EXE_send-test-event"),
        #[cfg(feature = "local")]
        env!("CARGO_BIN_EXE_local"),
    ]
}

#[test]
fn help_and_version_go_to_stdout_and_exit_0() {
    for binary in binaries() {
        for flag in ["--help", "-h"] {
            let out = run(binary, &[flag]);
            assert_eq!(out.status.code(), Some(0), "{binary} {flag}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("Usage:"), "{binary} {flag}: {text}");
        }
        let out = run(binary, &["--version"]);
        assert_eq!(out.status.code(), Some(0), "{binary} --version");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")),
            "{binary} --version"
        );
    }
}

#[test]
fn a_bad_argument_exits_2_with_a_short_message() {
    for binary in binaries() {
        let out = run(binary, &["--no-such-flag"]);
        assert_eq!(out.status.code(), Some(2), "{binary}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("--no-such-flag"), "{binary}: {text}");
        assert!(text.lines().count() <= 6, "{binary}: {text}");
    }
}
