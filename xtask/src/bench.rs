//! `cargo xtask bench`: runs the criterion benches (`harness/benches/speed.rs`) and prints
//! one table: each book figure beside its floor measured in the same run, with the ratio,
//! then the harness's rates against the targets of issue 12. `BENCHMARKS.md` holds a run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use serde::Deserialize;

use crate::nextest::{target_dir, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the benches whose id contains this (criterion's filter), e.g. `write_path`.
    pub filter: Option<String>,
    /// Fewer samples, for a quick look (criterion's `--quick`); not for published figures.
    #[arg(long)]
    pub quick: bool,
}

/// One bench's result, read from criterion's `new/` directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Mean time per iteration, in nanoseconds.
    pub nanos: f64,
    pub throughput: Option<Throughput>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub enum Throughput {
    Elements(u64),
    Bytes(u64),
}

impl Measured {
    /// Elements (or bytes) per second.
    pub fn rate(&self) -> Option<f64> {
        let per_iteration = match self.throughput? {
            Throughput::Elements(count) | Throughput::Bytes(count) => count as f64,
        };
        Some(per_iteration * 1e9 / self.nanos)
    }
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let criterion = target_dir().join("criterion");
    if criterion.exists() {
        // Figures from an earlier run must not be read as this run's.
        std::fs::remove_dir_all(&criterion)
            .with_context(|| format!("clearing {}", criterion.display()))?;
    }
    let mut command = Command::new("cargo");
    command
        .current_dir(workspace_root())
        .args(["bench", "-p", "harness", "--bench", "speed", "--"]);
    if args.quick {
        command.arg("--quick");
    }
    if let Some(filter) = &args.filter {
        command.arg(filter);
    }
    let status = command.status().context("running cargo bench")?;
    if !status.success() {
        eprintln!("error: cargo bench failed ({status})");
        return Ok(crate::exit::GATE_FAILED);
    }
    let measured = read_all(&criterion)?;
    print!("{}", table(&measured));
    Ok(crate::exit::OK)
}

#[derive(Deserialize)]
struct BenchmarkFile {
    full_id: String,
    throughput: Option<Throughput>,
}

#[derive(Deserialize)]
struct EstimatesFile {
    mean: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// Every bench under `criterion/` (`GROUP/.../new/{benchmark,estimates}.json`), by id.
fn read_all(criterion: &Path) -> anyhow::Result<BTreeMap<String, Measured>> {
    let mut measured = BTreeMap::new();
    for path in crate::pg_image::files_under(criterion) {
        let in_new = path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|name| name == "new");
        if in_new
            && path
                .file_name()
                .is_some_and(|name| name == "benchmark.json")
        {
            let (id, result) = read_one(&path)?;
            measured.insert(id, result);
        }
    }
    Ok(measured)
}

fn read_one(benchmark: &Path) -> anyhow::Result<(String, Measured)> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let file: BenchmarkFile = serde_json::from_str(&read(benchmark)?)
        .with_context(|| format!("parsing {}", benchmark.display()))?;
    let estimates_path = benchmark.with_file_name("estimates.json");
    let estimates: EstimatesFile = serde_json::from_str(&read(&estimates_path)?)
        .with_context(|| format!("parsing {}", estimates_path.display()))?;
    Ok((
        file.full_id,
        Measured {
            nanos: estimates.mean.point_estimate,
            throughput: file.throughput,
        },
    ))
}

/// The rates issue 12 set as targets on this 2-core machine, by bench id.
const TARGETS: &[(&str, &str, f64)] = &[
    ("harness/crash_recover/sqlite", "crashed runs/s", 500.0),
    ("harness/seeded_run/sqlite", "seeds/s", 200.0),
    ("harness/seeded_run/postgres", "seeds/s", 20.0),
];

/// The table: book against floor (ratio = the book's time over the floor's), then every
/// other bench's rate (and its target, where it has one).
pub fn table(measured: &BTreeMap<String, Measured>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<28} {:>16} {:>16} {:>8}\n",
        "book against its floor", "book /s", "floor /s", "ratio"
    ));
    let mut paired = Vec::new();
    for (id, book) in measured {
        let Some(prefix) = id.strip_suffix("/book") else {
            continue;
        };
        let floor_id = format!("{prefix}/floor");
        if let Some(floor) = measured.get(&floor_id) {
            out.push_str(&format!(
                "{prefix:<28} {:>16} {:>16} {:>7.2}x\n",
                rate_text(book),
                rate_text(floor),
                book.nanos / floor.nanos
            ));
            paired.push(id.clone());
            paired.push(floor_id);
        }
    }
    out.push_str(&format!(
        "\n{:<36} {:>16} {:>14} {:>30}\n",
        "harness", "per second", "each", "target"
    ));
    for (id, result) in measured {
        if paired.contains(id) {
            continue;
        }
        let target = TARGETS
            .iter()
            .find(|(target_id, ..)| target_id == id)
            .map(|(_, unit, target)| match result.rate() {
                // How far the measured rate is from its target: 1.00x or more meets it.
                Some(rate) => format!(">= {target:.0} {unit} ({:.2}x)", rate / target),
                None => format!(">= {target:.0} {unit}"),
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{id:<36} {:>16} {:>14} {target:>30}\n",
            rate_text(result),
            time_text(result.nanos)
        ));
    }
    out
}

fn rate_text(result: &Measured) -> String {
    match (result.rate(), result.throughput) {
        (Some(rate), Some(Throughput::Bytes(_))) => format!("{:.1} MB", rate / 1e6),
        (Some(rate), _) => format!("{rate:.1}"),
        (None, _) => "-".to_owned(),
    }
}

fn time_text(nanos: f64) -> String {
    if nanos >= 1e9 {
        format!("{:.2} s", nanos / 1e9)
    } else if nanos >= 1e6 {
        format!("{:.2} ms", nanos / 1e6)
    } else {
        format!("{:.1} us", nanos / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(nanos: f64, elements: u64) -> Measured {
        Measured {
            nanos,
            throughput: Some(Throughput::Elements(elements)),
        }
    }

    #[test]
    fn a_book_is_set_beside_its_floor_with_the_ratio_of_their_times() {
        let results = BTreeMap::from([
            ("write_path/sqlite/book".to_owned(), measured(3e6, 1)),
            ("write_path/sqlite/floor".to_owned(), measured(1e6, 1)),
            ("harness/dump_digest/sqlite".to_owned(), measured(5e8, 10)),
        ]);
        let table = table(&results);
        let row = table
            .lines()
            .find(|line| line.starts_with("write_path/sqlite "))
            .expect("a paired row");
        assert!(
            row.contains("333.3") && row.contains("1000.0") && row.ends_with("3.00x"),
            "{row}"
        );
        assert!(table.contains("harness/dump_digest/sqlite"), "{table}");
        assert!(!table.contains("write_path/sqlite/book"), "{table}");
    }

    #[test]
    fn a_harness_rate_is_set_beside_its_target_with_how_far_it_is() {
        // 10 ms per seeded run: 100 seeds/s against a target of 200.
        let results = BTreeMap::from([("harness/seeded_run/sqlite".to_owned(), measured(1e7, 1))]);
        let table = table(&results);
        let row = table
            .lines()
            .find(|line| line.starts_with("harness/seeded_run/sqlite "))
            .expect("a harness row");
        assert!(
            row.contains("100.0") && row.ends_with(">= 200 seeds/s (0.50x)"),
            "{row}"
        );
    }

    #[test]
    fn criterion_files_are_read_by_their_full_id() {
        let directory = tempfile::tempdir().expect("temp dir");
        let new = directory.path().join("write_path/sqlite_book/new");
        std::fs::create_dir_all(&new).expect("mkdir");
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"write_path","function_id":"sqlite/book","value_str":null,"throughput":{"Elements":1},"full_id":"write_path/sqlite/book","directory_name":"write_path/sqlite_book","title":"write_path/sqlite/book"}"#,
        )
        .expect("write");
        std::fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":3.0},"point_estimate":2000.0,"standard_error":0.5}}"#,
        )
        .expect("write");
        let results = read_all(directory.path()).expect("read");
        assert_eq!(
            results.get("write_path/sqlite/book"),
            Some(&measured(2000.0, 1))
        );
        assert_eq!(results["write_path/sqlite/book"].rate(), Some(500_000.0));
    }
}
