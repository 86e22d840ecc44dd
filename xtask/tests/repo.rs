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
fn every_gate_has_a_target_and_a_mutant_test() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("list")
        .output()
        .expect("run xtask list");
    let listing = String::from_utf8_lossy(&output.stdout);
    let gates: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(!gates.is_empty(), "xtask list names no gate:\n{listing}");
    for gate in gates {
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

/// The `[dependencies]` of a crate's manifest, by name.
fn dependencies(manifest: &str) -> Vec<String> {
    let text = read(manifest);
    let section = text
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or("");
    section
        .lines()
        .filter_map(|line| line.split(['.', '=', ' ']).next())
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_book_knows_nothing_of_the_harness_and_the_contract_nothing_of_the_book() {
    for (manifest, forbidden) in [
        ("book/Cargo.toml", &["harness", "gates", "xtask"][..]),
        (
            "protocol/Cargo.toml",
            &["book", "harness", "gates", "xtask"][..],
        ),
        (
            "latch/Cargo.toml",
            &["protocol", "book", "harness", "gates", "xtask"][..],
        ),
    ] {
        let dependencies = dependencies(manifest);
        for name in forbidden {
            assert!(
                !dependencies.iter().any(|dependency| dependency == name),
                "{manifest} depends on {name}: the book must not know its verifier, and the contract must not know any book"
            );
        }
    }
}

#[test]
fn the_schema_has_no_float_column() {
    for backend in ["sqlite", "postgres"] {
        for entry in
            std::fs::read_dir(root().join("book/migrations").join(backend)).expect("migrations")
        {
            let path = entry.expect("entry").path();
            // Comments may say "money"; only the statements count.
            let sql: String = std::fs::read_to_string(&path)
                .expect("read migration")
                .lines()
                .map(|line| line.split("--").next().unwrap_or_default().to_uppercase() + "\n")
                .collect();
            for float_type in ["REAL", "FLOAT", "DOUBLE", "NUMERIC", "DECIMAL", "MONEY"] {
                assert!(
                    !sql.split(|character: char| !character.is_ascii_alphanumeric() && character != '_')
                        .any(|word| word == float_type),
                    "{} declares a {float_type} column: money and quantities are fixed-point integers",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn only_the_settings_room_reads_bookproof_variables() {
    for directory in [
        "book/src",
        "protocol/src",
        "harness/src",
        "gates/tests",
        "xtask/src",
    ] {
        for path in walk(&root().join(directory)) {
            if path.ends_with("harness/src/settings.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("read source");
            assert!(
                !source.contains("\"BOOKPROOF_"),
                "{} names a BOOKPROOF_ variable: read it through harness::settings::Settings",
                path.display()
            );
        }
    }
}

/// The same count as the before-stop hook: a function runs from its `fn` line to the line
/// where its braces balance.
fn long_functions(path: &Path, limit: usize) -> Vec<String> {
    let source = std::fs::read_to_string(path).expect("read source");
    let lines: Vec<&str> = source.lines().collect();
    let mut long = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index].trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "const fn ",
            "pub const fn ",
        ]
        .iter()
        .any(|prefix| line.starts_with(prefix));
        if !is_fn || line.trim_end().ends_with(';') {
            index += 1;
            continue;
        }
        let (mut depth, mut end, mut opened) = (0_i64, index, false);
        while end < lines.len() {
            depth +=
                lines[end].matches('{').count() as i64 - lines[end].matches('}').count() as i64;
            opened |= lines[end].contains('{');
            if opened && depth <= 0 {
                break;
            }
            end += 1;
        }
        if end - index + 1 > limit {
            long.push(format!(
                "{}:{} ({} lines)",
                path.display(),
                index + 1,
                end - index + 1
            ));
        }
        index = if opened { end + 1 } else { index + 1 };
    }
    long
}

#[test]
fn no_function_is_longer_than_80_lines() {
    let mut long = Vec::new();
    for directory in [
        "book/src",
        "protocol/src",
        "latch/src",
        "harness/src",
        "xtask/src",
    ] {
        for path in walk(&root().join(directory)) {
            long.extend(long_functions(&path, 80));
        }
    }
    assert!(
        long.is_empty(),
        "functions over 80 lines (split them so each reads top to bottom):\n{}",
        long.join("\n")
    );
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
