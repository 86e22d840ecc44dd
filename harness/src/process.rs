//! The `book` binary as a [`Subject`]: requests go to the process over the line protocol,
//! its venue calls are answered here by the case's simulated venue, so the venue outlives
//! the process. A crash is real: the process aborts at an armed crash point, or the harness
//! SIGKILLs it right after answering a venue call, without any cooperation from the book.

use std::io::{BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use book::crash::{CrashSite, Crashed};
use book::protocol::{self, BookLine, Request, VenueCall};
use book::store::StoreError;
use book::{
    BookError, BookOptions, BreakerState, Clock, CrashPlan, Outcome, RecoveryReport, Signal,
    TripReason,
};
use serde::de::DeserializeOwned;

use crate::provider::Database;
use crate::subject::Subject;
use crate::venue::SimVenue;
use crate::SimClock;

pub const BOOK_BIN_ENV: &str = "BOOKPROOF_BOOK_BIN";
/// Crash sites of this point are SIGKILLs sent right after the harness answered the
/// `hit`-th venue call of the run.
pub const SIGKILL_POINT: &str = "sigkill.after_venue_reply";

/// Where the `book` binary is: `$BOOKPROOF_BOOK_BIN`, else beside the test binaries.
pub fn book_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(BOOK_BIN_ENV) {
        return Ok(PathBuf::from(path));
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
            "the book binary is not built ({} is missing): run `cargo build -p book --bin book`, or use `cargo xtask`, which builds it",
            candidate.display()
        ))
    }
}

#[derive(Debug)]
pub struct ProcessSubject {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    venue: SimVenue,
    clock: SimClock,
    options: BookOptions,
    /// Set while a crash is planned in this process: the armed site and whether it is a
    /// SIGKILL after a venue reply (counted by `venue_replies`).
    planned: Option<CrashSite>,
    crash_plan: Option<CrashPlan>,
}

fn broken(message: String) -> BookError {
    BookError::Store(StoreError::Other {
        message: format!("book process: {message}"),
    })
}

impl ProcessSubject {
    pub fn spawn(
        database: &Database,
        venue: SimVenue,
        clock: SimClock,
        options: BookOptions,
    ) -> Result<ProcessSubject, BookError> {
        let binary = book_binary().map_err(broken)?;
        let run = &options.run;
        let mut command = Command::new(binary);
        command
            .args([
                "--run-id",
                &run.run_id,
                "--seed",
                &format!("{:#018x}", run.seed),
            ])
            .args([
                "--dataset-sha",
                &run.dataset_sha,
                "--config-sha",
                &run.config_sha,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match database {
            Database::Sqlite { path, .. } => {
                command.arg("--sqlite").arg(path);
            }
            Database::Postgres(database) => {
                command
                    .arg("--postgres")
                    .env("BOOK_POSTGRES_URL", database.url());
            }
        }
        if let Some(mutant) = options.mutant {
            command.args(["--mutant", mutant.name()]);
        }
        let planned = options.crash_plan.as_ref().and_then(CrashPlan::armed_site);
        if let Some(site) = planned.as_ref().filter(|site| site.point != SIGKILL_POINT) {
            command.args(["--crash-at", &site.to_string()]);
        }
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
            venue,
            clock,
            crash_plan: options.crash_plan.clone(),
            options,
            planned,
        };
        match subject.read::<BookLine>()? {
            BookLine::Ready => Ok(subject),
            BookLine::Done(Err(error)) => Err(error),
            other => Err(broken(format!("expected ready, got {other:?}"))),
        }
    }

    fn read<T: DeserializeOwned>(&mut self) -> Result<T, BookError> {
        match protocol::read_line::<T>(&mut self.stdout) {
            Ok(Some(line)) => Ok(line),
            Ok(None) | Err(_) => Err(self.died()),
        }
    }

    /// The process is gone: a planned crash if it died of the planned signal.
    fn died(&mut self) -> BookError {
        let status = self.child.wait();
        let signal = status.as_ref().ok().and_then(|status| status.signal());
        match (&self.planned, signal) {
            (Some(site), Some(libc_sigabrt_or_sigkill))
                if [6, 9].contains(&libc_sigabrt_or_sigkill) =>
            {
                if let Some(plan) = &self.crash_plan {
                    plan.mark_fired();
                }
                BookError::Crashed(Crashed { site: site.clone() })
            }
            _ => broken(format!("exited unexpectedly: {status:?}")),
        }
    }

    fn request<T: DeserializeOwned>(&mut self, request: Request) -> Result<T, BookError> {
        protocol::write_line(&mut self.stdin, &request).map_err(|_| self.died())?;
        loop {
            match self.read::<BookLine>()? {
                BookLine::Venue(call) => self.answer(&call)?,
                BookLine::Done(Ok(value)) => {
                    return serde_json::from_value(value)
                        .map_err(|error| broken(format!("bad result: {error}")))
                }
                BookLine::Done(Err(error)) => return Err(error),
                BookLine::Ready => return Err(broken("ready twice".to_owned())),
            }
        }
    }

    fn answer(&mut self, call: &VenueCall) -> Result<(), BookError> {
        let reply = call.answer(&mut self.venue);
        protocol::write_line(&mut self.stdin, &reply).map_err(|_| self.died())?;
        let calls = self.venue.calls();
        if let Some(site) = &self.planned {
            if site.point == SIGKILL_POINT && u64::from(site.hit) == calls {
                // No cooperation from the book: it may be anywhere in its next step.
                let _ = self.child.kill();
                return Err(self.died());
            }
        }
        Ok(())
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

impl Drop for ProcessSubject {
    fn drop(&mut self) {
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Subject for ProcessSubject {
    fn submit(&mut self, signal: &Signal) -> Result<Outcome, BookError> {
        let now_ms = self.now_ms();
        self.request(Request::Submit {
            now_ms,
            signal: signal.clone(),
        })
    }

    fn close_position(&mut self, intent_id: &str, exit_price: i64) -> Result<i64, BookError> {
        let now_ms = self.now_ms();
        self.request(Request::ClosePosition {
            now_ms,
            intent_id: intent_id.to_owned(),
            exit_price,
        })
    }

    fn trip_breaker(&mut self, reason: TripReason, operator: &str) -> Result<(), BookError> {
        let now_ms = self.now_ms();
        self.request(Request::TripBreaker {
            now_ms,
            reason,
            operator: operator.to_owned(),
        })
    }

    fn reset_breaker(&mut self, operator: &str, reason: &str) -> Result<(), BookError> {
        let now_ms = self.now_ms();
        self.request(Request::ResetBreaker {
            now_ms,
            operator: operator.to_owned(),
            reason: reason.to_owned(),
        })
    }

    fn breaker(&mut self) -> Result<BreakerState, BookError> {
        let now_ms = self.now_ms();
        self.request(Request::Breaker { now_ms })
    }

    fn roll_day(&mut self) -> Result<(), BookError> {
        let now_ms = self.now_ms();
        self.request(Request::RollDay { now_ms })
    }

    fn checkpoint(&mut self, name: &str, value: &str) -> Result<(), BookError> {
        let now_ms = self.now_ms();
        self.request(Request::Checkpoint {
            now_ms,
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    fn recover(&mut self) -> Result<RecoveryReport, BookError> {
        let now_ms = self.now_ms();
        self.request(Request::Recover { now_ms })
    }

    fn sync_fills(&mut self) -> Result<usize, BookError> {
        let now_ms = self.now_ms();
        self.request(Request::SyncFills { now_ms })
    }

    /// Computed here with the reference algorithm (the protocol has no request for it).
    fn intent_id(&self, signal: &Signal) -> String {
        book::intent::intent_id(signal, &self.options.run.dataset_sha, self.options.run.seed)
    }
}
