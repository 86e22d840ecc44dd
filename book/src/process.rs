//! The book's side of the line protocol (`protocol` crate docs): requests from stdin,
//! venue calls and answers on stdout. Used by the `book` binary.

use std::io::Write;

use protocol::{
    BookLine, OrderRequest, Problem, ProblemKind, RequestLine, Venue, VenueCall, VenueError,
    VenueOrder, VenuePosition, VenueReply,
};

use crate::book::Book;
use crate::clock::{Clock, ManualClock};
use crate::serve;

/// Serves requests from stdin until it closes. A malformed request gets a `bad_request`
/// answer and the book keeps serving; only a broken stdout ends the loop with an error.
pub fn serve_lines(book: &mut Book, clock: &ManualClock) -> Result<(), String> {
    let mut stdout = std::io::stdout();
    loop {
        let text = match protocol::read_text(&mut std::io::stdin().lock()) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(()),
            Err(error) => return Err(format!("reading stdin: {error}")),
        };
        let reply = match parse(&text, clock) {
            Ok(line) => {
                clock.set(line.now_ms);
                match serve::serve(book, line.request) {
                    Ok(result) => BookLine::Ok { result },
                    Err(problem) => BookLine::Error { problem },
                }
            }
            Err(problem) => BookLine::Error { problem },
        };
        write(&mut stdout, &reply)?;
    }
}

/// The request on a line, or why it is not one.
fn parse(text: &str, clock: &ManualClock) -> Result<RequestLine, Problem> {
    let line: RequestLine = serde_json::from_str(text.trim_end())
        .map_err(|error| Problem::new(ProblemKind::BadRequest, error.to_string()))?;
    let now_ms = clock.now_ms();
    if line.now_ms < now_ms {
        return Err(Problem::new(
            ProblemKind::BadRequest,
            format!(
                "time went backwards: the request is at {} ms, the book is at {now_ms} ms",
                line.now_ms
            ),
        ));
    }
    Ok(line)
}

pub fn write(out: &mut dyn Write, line: &BookLine) -> Result<(), String> {
    protocol::write_line(out, line).map_err(|error| format!("writing stdout: {error}"))
}

/// The venue on the book's side: every call becomes a line on stdout, answered by the
/// driver on stdin.
#[derive(Debug, Default)]
pub struct LineVenue;

impl LineVenue {
    fn call(&mut self, call: VenueCall) -> Result<VenueReply, VenueError> {
        // The driver is gone or spoke nonsense: the call's outcome is unknown (599).
        let unreachable_driver = |_: std::io::Error| VenueError::Internal { status: 599 };
        protocol::write_line(&mut std::io::stdout().lock(), &BookLine::Venue(call))
            .map_err(unreachable_driver)?;
        match protocol::read_line::<VenueReply>(&mut std::io::stdin().lock()) {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(VenueError::Internal { status: 599 }),
            Err(error) => Err(unreachable_driver(error)),
        }
    }
}

impl Venue for LineVenue {
    fn place(&mut self, order: &OrderRequest) -> Result<VenueOrder, VenueError> {
        match self.call(VenueCall::Place {
            order: order.clone(),
        })? {
            VenueReply::Place { result } => result.into(),
            _ => Err(VenueError::Internal { status: 599 }),
        }
    }

    fn find_order(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        match self.call(VenueCall::FindOrder {
            client_order_id: client_order_id.to_owned(),
        })? {
            VenueReply::FindOrder { result } => result.into(),
            _ => Err(VenueError::Internal { status: 599 }),
        }
    }

    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError> {
        match self.call(VenueCall::Positions)? {
            VenueReply::Positions { result } => result.into(),
            _ => Err(VenueError::Internal { status: 599 }),
        }
    }

    fn cancel(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        match self.call(VenueCall::Cancel {
            client_order_id: client_order_id.to_owned(),
        })? {
            VenueReply::Cancel { result } => result.into(),
            _ => Err(VenueError::Internal { status: 599 }),
        }
    }
}
