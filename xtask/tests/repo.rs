//! Repository checks as ordinary tests, so `cargo xtask test` is the single truth. Each
//! failure says the command or edit that fixes it.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The commands in README.md's fenced `sh` blocks, in order.
fn readme_commands() -> Vec<String> {
    let readme = read("README.md");
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in readme.lines() {
        match (in_block, line.trim()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, command) if !command.is_empty() => commands.push(command.to_owned()),
            _ => {}
        }
    }
    commands
}

#[test]
fn readme_opens_with_the_main_job_then_the_tests() {
    let commands = readme_commands();
    assert_eq!(
        commands.get(..2),
        Some(
            &[
                "cargo xtask verify".to_owned(),
                "cargo xtask test".to_owned()
            ][..]
        ),
        "README.md must open with `cargo xtask verify` then `cargo xtask test` in ```sh blocks"
    );
}

#[test]
fn ci_runs_the_readme_test_command() {
    let ci = read(".ci/run");
    let test_command = &readme_commands()[1];
    assert!(
        ci.lines().any(|line| line.trim() == test_command),
        ".ci/run must run the README's test command `{test_command}` on a line of its own"
    );
}

#[test]
fn every_implemented_gate_has_a_target_and_a_mutant_test() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("list")
        .output()
        .expect("run xtask list");
    let listing = String::from_utf8_lossy(&output.stdout);
    let implemented: Vec<&str> = listing
        .lines()
        .filter(|line| !line.contains("(not implemented yet)"))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        !implemented.is_empty(),
        "xtask list names no implemented gate:\n{listing}"
    );
    for gate in implemented {
        let path = format!("gates/tests/{}.rs", gate.replace('-', "_"));
        let source = read(&path);
        let mutants = source
            .split("mutants: [")
            .nth(1)
            .and_then(|rest| rest.split("];").next())
            .unwrap_or_else(|| panic!("{path} declares no `mutants: [...]` in gate_tests!"));
        assert!(
            mutants.contains("=>"),
            "{path}: gate {gate} lists no mutant test; add one that the gate must catch"
        );
        assert!(
            source.contains("//! # Gate:"),
            "{path} must open with its Given/When/Then doc comment"
        );
    }
}

#[test]
fn code_is_formatted() {
    let output = Command::new("cargo")
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(root())
        .output()
        .expect("run cargo fmt");
    assert!(
        output.status.success(),
        "code is not formatted: run `cargo fmt --all`\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn architecture_maps_every_crate() {
    let architecture = read("ARCHITECTURE.md");
    let manifest = read("Cargo.toml");
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("a workspace members list");
    for member in members
        .split(',')
        .map(|member| member.trim().trim_matches('"'))
        .filter(|member| !member.is_empty())
    {
        assert!(
            architecture.contains(&format!("### `{member}/`")),
            "ARCHITECTURE.md has no `### `{member}/`` section"
        );
    }
}

#[test]
fn the_book_never_reads_the_wall_clock() {
    // mutant.rs holds the deliberate bugs (a wall-clock read, a float price) on purpose.
    for entry in walk(&root().join("book/src"))
        .into_iter()
        .filter(|path| !path.ends_with("mutant.rs"))
    {
        let source = std::fs::read_to_string(&entry).expect("read source");
        for forbidden in [
            "SystemTime::now",
            "Instant::now",
            "thread_rng",
            "OsRng",
            "f64",
            "f32",
        ] {
            assert!(
                !source.contains(forbidden),
                "{} uses {forbidden}: the book takes time from its Clock, randomness from the seed, and stores no floats",
                entry.display()
            );
        }
    }
}

fn walk(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}
