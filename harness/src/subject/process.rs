//! A book as a process, over the line protocol of the `protocol` crate: by default the
//! `book` binary, or any program `BOOKPROOF_BOOK_BIN` names. Its venue calls are answered
//! here by the case's simulated venue, so the venue outlives the process. A crash is real:
//! the process aborts at an armed crash point (`--crash-at`), or the harness SIGKILLs it
//! right after answering a venue call, without any cooperation from the book.

use std::io::{BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use book::{BookOptions, Clock, CrashPlan};
use protocol::{
    BookLine, CrashPoint, CrashSite, Problem, ProblemKind, Request, RequestLine, VenueCall,
    PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;

use super::Subject;
use crate::database::Database;
use crate::settings::{self, Settings};
use crate::venue::SimVenue;
use crate::SimClock;

const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;

/// Where the `book` binary is: `$BOOKPROOF_BOOK_BIN`, else beside the test binaries.
pub fn book_binary() -> Result<PathBuf, String> {
    if let Some(path) = &Settings::get().book_bin {
        return Ok(path.clone());
    }
    let executable = std::env::current_exe().map_err(|error| error.to_string())?;
    // target/debug/deps/crash-<hash> -> target/debug/book
    let candidate = executable
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("book"))
        .ok_or("cannot place the book binary next to the test binary")?;
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "the book binary is not built ({} is missing): run `cargo build -p book --bin book`, \
             use `cargo xtask`, which builds it, or name another with {}",
            candidate.display(),
            settings::BOOK_BIN
        ))
    }
}

/// How the harness crashes the process, if a crash is planned.
#[derive(Debug, Clone)]
enum PlannedCrash {
    /// The process aborts at this crash point (`--crash-at`).
    Abort(CrashSite),
    /// The harness SIGKILLs it right after answering the venue call with this number.
    KillAfterReply(CrashSite),
}

#[derive(Debug)]
pub struct ProcessSubject {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    venue: SimVenue,
    clock: SimClock,
    planned: Option<PlannedCrash>,
    crash_plan: Option<CrashPlan>,
}

fn broken(message: String) -> Problem {
    Problem::new(ProblemKind::Protocol, format!("book process: {message}"))
}

impl ProcessSubject {
    pub fn spawn(
        database: &Database,
        venue: &SimVenue,
        clock: &SimClock,
        options: BookOptions,
    ) -> Result<ProcessSubject, Problem> {
        let planned = options
            .crash_plan
            .as_ref()
            .and_then(CrashPlan::armed_site)
            .map(|site| match site.point {
                CrashPoint::AfterVenueReply => PlannedCrash::KillAfterReply(site),
                _ => PlannedCrash::Abort(site),
            });
        let mut command = command(database, &options, planned.as_ref())?;
        let mut child = command
            .spawn()
            .map_err(|error| broken(format!("cannot start: {error}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(broken("no pipes".to_owned()));
        };
        let mut subject = ProcessSubject {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            venue: venue.clone(),
            clock: clock.clone(),
            crash_plan: options.crash_plan.clone(),
            planned,
        };
        match subject.read::<BookLine>()? {
            BookLine::Ready { protocol_version } if protocol_version == PROTOCOL_VERSION => {
                Ok(subject)
            }
            BookLine::Error { problem } => Err(problem),
            other => Err(broken(format!(
                "expected ready with protocol version {PROTOCOL_VERSION}, got {other:?}"
            ))),
        }
    }

    fn read<T: DeserializeOwned>(&mut self) -> Result<T, Problem> {
        match protocol::read_line::<T>(&mut self.stdout) {
            Ok(Some(line)) => Ok(line),
            Ok(None) | Err(_) => Err(self.died()),
        }
    }

    /// The process is gone: a planned crash if it died of the planned signal.
    fn died(&mut self) -> Problem {
        let status = self.child.wait();
        let signal = status.as_ref().ok().and_then(|status| status.signal());
        let site = match &self.planned {
            Some(PlannedCrash::Abort(site)) if signal == Some(SIGABRT) => site.clone(),
            Some(PlannedCrash::KillAfterReply(site)) if signal == Some(SIGKILL) => site.clone(),
            _ => return broken(format!("exited unexpectedly: {status:?}")),
        };
        if let Some(plan) = &self.crash_plan {
            plan.mark_fired();
        }
        Problem {
            crash_site: Some(site.clone()),
            ..Problem::new(ProblemKind::Crashed, format!("crashed at {site} (process)"))
        }
    }

    fn answer(&mut self, call: &VenueCall) -> Result<(), Problem> {
        let reply = call.answer(&mut self.venue);
        protocol::write_line(&mut self.stdin, &reply).map_err(|_| self.died())?;
        if let Some(PlannedCrash::KillAfterReply(site)) = &self.planned {
            if u64::from(site.hit) == self.venue.calls() {
                // No cooperation from the book: it may be anywhere in its next step.
                let _ = self.child.kill();
                return Err(self.died());
            }
        }
        Ok(())
    }
}

fn command(
    database: &Database,
    options: &BookOptions,
    planned: Option<&PlannedCrash>,
) -> Result<Command, Problem> {
    let binary = book_binary().map_err(broken)?;
    let run = &options.run;
    let access = database.process_access();
    let mut command = Command::new(binary);
    command
        .args(["--run-id", &run.run_id])
        .args(["--seed", &format!("{:#018x}", run.seed)])
        .args(["--dataset-sha", &run.dataset_sha])
        .args(["--config-sha", &run.config_sha])
        .args(["--mode", run.mode.as_str()])
        .args(["--stop-loss", &options.limits.stop_loss.to_string()])
        .args(["--take-profit", &options.limits.take_profit.to_string()])
        .args(["--max-open", &options.limits.max_open.to_string()])
        .args(["--max-exposure", &options.limits.max_exposure.to_string()])
        .args([
            "--max-daily-loss",
            &options.limits.max_daily_loss.to_string(),
        ])
        .args(&access.arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, url) in &access.environment {
        command.env(name, url.expose());
    }
    if let Some(mutant) = options.mutant {
        command.args(["--mutant", mutant.name()]);
    }
    if let Some(PlannedCrash::Abort(site)) = planned {
        command.args(["--crash-at", &site.to_string()]);
    }
    Ok(command)
}

impl Drop for ProcessSubject {
    fn drop(&mut self) {
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Subject for ProcessSubject {
    fn request(&mut self, request: Request) -> Result<serde_json::Value, Problem> {
        let line = RequestLine {
            now_ms: self.clock.now_ms(),
            request,
        };
        protocol::write_line(&mut self.stdin, &line).map_err(|_| self.died())?;
        loop {
            match self.read::<BookLine>()? {
                BookLine::Venue(call) => self.answer(&call)?,
                BookLine::Ok { result } => return Ok(result),
                BookLine::Error { problem } => return Err(problem),
                BookLine::Ready { .. } => return Err(broken("ready twice".to_owned())),
            }
        }
    }
}
