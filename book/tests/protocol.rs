//! The `book` binary against the contract: it answers every request example of
//! `protocol::examples` with a line that parses as the protocol says, and a malformed
//! request (unknown op, missing field, time going backwards, not JSON) gets a
//! `bad_request` answer naming the problem while the book keeps serving.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use protocol::examples::{Form, EXAMPLES};
use protocol::{BookLine, BookState, ProblemKind, RequestLine, VenueCall, VenueOrder, VenueReply};

struct Book {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Orders the test's venue accepted, by client order id.
    orders: Vec<VenueOrder>,
}

impl Book {
    fn start(directory: &std::path::Path) -> Book {
        let mut child = Command::new(env!("CARGO_BIN_EXE_book"))
            .args(["--sqlite"])
            .arg(directory.join("book.sqlite3"))
            .args(["--run-id", "conformance", "--seed", "0x1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the book binary");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut book = Book {
            child,
            stdin,
            stdout,
            orders: Vec::new(),
        };
        let ready = book.read();
        assert!(
            matches!(
                ready,
                BookLine::Ready {
                    protocol_version: 1
                }
            ),
            "{ready:?}"
        );
        book
    }

    fn read(&mut self) -> BookLine {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read a line");
        serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("{line:?} is not a book line: {error}"))
    }

    /// Sends one raw line; answers venue calls until the book answers the request.
    fn send(&mut self, line: &str) -> BookLine {
        writeln!(self.stdin, "{line}").expect("write");
        self.stdin.flush().expect("flush");
        loop {
            match self.read() {
                BookLine::Venue(call) => {
                    let reply = self.venue(call);
                    protocol::write_line(&mut self.stdin, &reply).expect("reply");
                }
                answer => return answer,
            }
        }
    }

    /// A venue that accepts and fills every order.
    fn venue(&mut self, call: VenueCall) -> VenueReply {
        match call {
            VenueCall::Place { order } => {
                let placed = VenueOrder {
                    venue_order_id: format!("V-{}", order.client_order_id),
                    client_order_id: order.client_order_id.clone(),
                    symbol: order.symbol,
                    side: order.side,
                    size: order.size,
                    fills: vec![protocol::VenueFill {
                        trade_id: format!("T-{}", order.client_order_id),
                        qty: order.size,
                        price: order.price,
                    }],
                    rejection: None,
                    cancelled: false,
                };
                self.orders.push(placed.clone());
                VenueReply::Place {
                    result: protocol::VenueResult::Ok(placed),
                }
            }
            VenueCall::FindOrder { client_order_id } => VenueReply::FindOrder {
                result: protocol::VenueResult::Ok(
                    self.orders
                        .iter()
                        .find(|order| order.client_order_id == client_order_id)
                        .cloned(),
                ),
            },
            VenueCall::Positions => VenueReply::Positions {
                result: protocol::VenueResult::Ok(protocol::net_positions(self.orders.iter())),
            },
            VenueCall::Cancel { client_order_id } => VenueReply::Cancel {
                result: protocol::VenueResult::Ok(
                    self.orders
                        .iter()
                        .find(|order| order.client_order_id == client_order_id)
                        .cloned(),
                ),
            },
        }
    }
}

impl Drop for Book {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_book_answers_every_request_example() {
    let directory = tempfile::tempdir().expect("temp dir");
    let mut book = Book::start(directory.path());
    for example in EXAMPLES
        .iter()
        .filter(|example| example.form == Form::Request)
    {
        let request: RequestLine = serde_json::from_str(example.json).expect("the example parses");
        match book.send(example.json) {
            BookLine::Ok { result } => {
                if example.name == "state" {
                    let state: BookState = serde_json::from_value(result).expect("a book state");
                    assert_eq!(state.intents.len(), 1, "the submit example made one intent");
                }
            }
            BookLine::Error { problem } => assert!(
                problem.kind != ProblemKind::BadRequest && problem.kind.is_refusal(),
                "example {} ({:?}) was not understood: {problem:?}",
                example.name,
                request.request
            ),
            other => panic!("example {}: unexpected {other:?}", example.name),
        }
    }
}

#[test]
fn a_malformed_request_is_answered_and_the_book_keeps_serving() {
    let directory = tempfile::tempdir().expect("temp dir");
    let mut book = Book::start(directory.path());
    assert!(matches!(
        book.send(r#"{"now_ms":5000,"op":"breaker"}"#),
        BookLine::Ok { .. }
    ));
    for (line, names) in [
        (
            r#"{"now_ms":6000,"op":"teleport"}"#,
            "unknown variant `teleport`",
        ),
        (r#"{"now_ms":6000,"op":"submit"}"#, "missing field `signal`"),
        (r#"{"op":"breaker"}"#, "missing field `now_ms`"),
        (r#"{"now_ms":1000,"op":"breaker"}"#, "time went backwards"),
        ("this is not json", "expected"),
        ("", "EOF while parsing"),
    ] {
        match book.send(line) {
            BookLine::Error { problem } => {
                assert_eq!(
                    problem.kind,
                    ProblemKind::BadRequest,
                    "{line:?}: {problem:?}"
                );
                assert!(
                    problem.message.contains(names),
                    "{line:?}: {}",
                    problem.message
                );
            }
            other => panic!("{line:?} must be refused, got {other:?}"),
        }
    }
    let breaker = book.send(r#"{"now_ms":7000,"op":"breaker"}"#);
    assert!(
        matches!(&breaker, BookLine::Ok { result } if result["open"] == false),
        "the book stopped serving after bad requests: {breaker:?}"
    );
}
