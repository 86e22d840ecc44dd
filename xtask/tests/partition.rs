//! `verify --partition K/N` and `report merge`: the shards of one N together run exactly
//! the cases of one unpartitioned run, each once, and their merged report equals the
//! unpartitioned report apart from timings.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

/// Runs `cargo xtask ARGS` with its reports in `out`; returns the exit code and output.
fn xtask(arguments: &[&str], out: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(arguments)
        .current_dir(workspace_root())
        .env("BOOKPROOF_OUT_DIR", out)
        .output()
        .expect("run the xtask binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn report(out: &Path) -> Value {
    let path = out.join("report.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_str(&text).expect("report.json parses")
}

/// (gate, backend, test, outcome) of every case.
fn cases(report: &Value) -> Vec<(String, String, String, String)> {
    let mut cases: Vec<_> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let field = |name: &str| case[name].as_str().unwrap_or_default().to_owned();
            (
                field("gate"),
                field("backend"),
                field("test"),
                field("outcome"),
            )
        })
        .collect();
    cases.sort();
    cases
}

/// The table's rows without their timings.
fn rows(report: &Value) -> Vec<Value> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            let mut row = row.clone();
            row.as_object_mut().expect("a row").remove("millis");
            row
        })
        .collect()
}

#[test]
fn two_shards_run_each_case_once_and_merge_into_the_whole_run() {
    let whole = tempfile::tempdir().expect("temp dir");
    let shards = [
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    ];
    let merged = tempfile::tempdir().expect("temp dir");
    let (code, output) = xtask(&["verify", "config"], whole.path());
    assert_eq!(code, Some(0), "the unpartitioned run failed:\n{output}");
    for (index, shard) in shards.iter().enumerate() {
        let partition = format!("{}/2", index + 1);
        let (code, output) = xtask(
            &["verify", "config", "--partition", &partition],
            shard.path(),
        );
        assert_eq!(code, Some(0), "shard {partition} failed:\n{output}");
    }
    let (first, second) = (
        cases(&report(shards[0].path())),
        cases(&report(shards[1].path())),
    );
    assert!(
        !first.is_empty() && !second.is_empty(),
        "a shard ran nothing: {first:?} / {second:?}"
    );
    let first_set: BTreeSet<_> = first.iter().collect();
    assert!(
        second.iter().all(|case| !first_set.contains(case)),
        "a case ran in both shards: {first:?} / {second:?}"
    );
    let mut together = [first, second].concat();
    together.sort();
    let unpartitioned = report(whole.path());
    assert_eq!(
        together,
        cases(&unpartitioned),
        "the shards' cases are not the whole run's"
    );

    let (code, output) = xtask(
        &[
            "report",
            "merge",
            &shards[0].path().display().to_string(),
            &shards[1].path().display().to_string(),
        ],
        merged.path(),
    );
    assert_eq!(code, Some(0), "report merge failed:\n{output}");
    let merged_report = report(merged.path());
    assert_eq!(cases(&merged_report), cases(&unpartitioned));
    assert_eq!(rows(&merged_report), rows(&unpartitioned));
    assert_eq!(merged_report["coverage"], unpartitioned["coverage"]);
    assert_eq!(merged_report["passed"], unpartitioned["passed"]);
    let junit = std::fs::read_to_string(merged.path().join("junit.xml")).expect("junit.xml");
    assert_eq!(
        junit.matches("<testcase ").count(),
        cases(&unpartitioned).len(),
        "{junit}"
    );
}

#[test]
fn overlapping_shards_are_refused() {
    let shard = tempfile::tempdir().expect("temp dir");
    let merged = tempfile::tempdir().expect("temp dir");
    let case = r#"{"gate":"config","backend":"sqlite","test":"rules","kind":"check","outcome":"pass","detail":null,"checks":[],"seed":"0x1","millis":1,"repro":"r","coverage":{}}"#;
    std::fs::write(
        shard.path().join("report.json"),
        format!(r#"{{"passed":true,"databases":[],"cases":[{case}]}}"#),
    )
    .expect("write");
    let directory = shard.path().display().to_string();
    let (code, output) = xtask(&["report", "merge", &directory, &directory], merged.path());
    assert_eq!(code, Some(3), "{output}");
    assert!(
        output.contains("error: the shards overlap: config on sqlite: rules is in"),
        "{output}"
    );
}

#[test]
fn a_malformed_partition_is_refused() {
    let out = tempfile::tempdir().expect("temp dir");
    for partition in ["0/2", "3/2", "1", "a/b"] {
        let (code, output) = xtask(&["verify", "config", "--partition", partition], out.path());
        assert_eq!(code, Some(2), "{partition}: {output}");
        assert!(
            output.contains("expected K/N with 1 <= K <= N"),
            "{partition}: {output}"
        );
    }
}
