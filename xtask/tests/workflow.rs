//! `ci/bookproof.yml` parses, runs every gate on every backend as a matrix of shards, and
//! every `cargo xtask` command in it is one the xtask accepts (each is run with `--help`
//! appended, with the matrix's first values for its variables: clap refuses an unknown
//! subcommand, flag or value before it prints help).

use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

fn workflow() -> Yaml {
    let text = std::fs::read_to_string(workspace_root().join("ci/bookproof.yml"))
        .expect("read ci/bookproof.yml");
    let mut documents = YamlLoader::load_from_str(&text).expect("ci/bookproof.yml parses");
    assert_eq!(documents.len(), 1, "one YAML document");
    documents.remove(0)
}

fn names(list: &Yaml) -> Vec<String> {
    list.as_vec()
        .expect("a list")
        .iter()
        .map(|item| match item {
            Yaml::String(text) => text.clone(),
            Yaml::Integer(number) => number.to_string(),
            other => panic!("unexpected matrix value {other:?}"),
        })
        .collect()
}

#[test]
fn every_gate_and_backend_is_a_job_of_the_matrix() {
    let workflow = workflow();
    let matrix = &workflow["jobs"]["gate"]["strategy"]["matrix"];
    let listed = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("list")
        .output()
        .expect("run xtask list");
    let gates: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    assert_eq!(
        names(&matrix["gate"]),
        gates,
        "the matrix's gates are not `xtask list`'s"
    );
    assert_eq!(names(&matrix["backend"]), ["sqlite", "postgres"]);
    assert!(
        names(&matrix["shard"]).len() >= 2,
        "the gates run in shards"
    );
}

#[test]
fn every_xtask_command_in_the_workflow_exists() {
    let workflow = workflow();
    let matrix = &workflow["jobs"]["gate"]["strategy"]["matrix"];
    let first = |key: &str| names(&matrix[key]).remove(0);
    let variables = [
        ("\"$GATE\"", first("gate")),
        ("\"$BACKEND\"", first("backend")),
        ("\"$SHARD/$SHARDS\"", format!("{}/2", first("shard"))),
    ];
    let mut commands = 0;
    for (_, job) in workflow["jobs"].as_hash().expect("jobs") {
        for step in job["steps"].as_vec().expect("steps") {
            let Some(run) = step["run"].as_str() else {
                continue;
            };
            for line in run.lines().filter(|line| line.contains("cargo xtask")) {
                let command = line
                    .split("cargo xtask")
                    .nth(1)
                    .and_then(|rest| rest.split('|').next())
                    .expect("a command");
                let mut command = command.to_owned();
                for (variable, value) in &variables {
                    command = command.replace(variable, value);
                }
                let mut arguments: Vec<&str> = command.split_whitespace().collect();
                arguments.push("--help");
                let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
                    .args(&arguments)
                    .current_dir(workspace_root())
                    .output()
                    .expect("run the xtask binary");
                assert!(
                    output.status.success(),
                    "`cargo xtask {}` is not a command the xtask accepts:\n{}",
                    arguments.join(" "),
                    String::from_utf8_lossy(&output.stderr)
                );
                commands += 1;
            }
        }
    }
    assert!(commands >= 2, "the workflow runs no cargo xtask command");
}
