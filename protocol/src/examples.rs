//! One example of every line of the protocol, exactly as it travels. The conformance tests
//! parse each into its type and require the type to write it back unchanged, on the
//! harness's side (this crate) and on the book's (the `book` binary answers every request
//! example).

/// Which type a line parses into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Driver -> book: [`crate::RequestLine`].
    Request,
    /// Book -> driver: [`crate::BookLine`].
    BookLine,
    /// Driver -> book, answering a venue call: [`crate::VenueReply`].
    VenueReply,
}

#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub name: &'static str,
    pub form: Form,
    pub json: &'static str,
}

pub const EXAMPLES: &[Example] = &[
    Example {
        name: "submit",
        form: Form::Request,
        json: r#"{"now_ms":60000,"op":"submit","signal":{"strategy":"momentum","symbol":"BTC-USD","window_id":"w-1","side":"buy","size":2,"price":4200000,"bar_t":60000,"params":"v1"}}"#,
    },
    Example {
        name: "close_position",
        form: Form::Request,
        json: r#"{"now_ms":61000,"op":"close_position","intent_id":"250c05ac52e5e1de","exit_price":4250000,"command_id":"step-3"}"#,
    },
    Example {
        name: "trip_breaker",
        form: Form::Request,
        json: r#"{"now_ms":62000,"op":"trip_breaker","reason":"manual_trip","operator":"operator-1","command_id":"step-4"}"#,
    },
    Example {
        name: "reset_breaker",
        form: Form::Request,
        json: r#"{"now_ms":63000,"op":"reset_breaker","operator":"operator-1","reason":"checked"}"#,
    },
    Example {
        name: "breaker",
        form: Form::Request,
        json: r#"{"now_ms":63000,"op":"breaker"}"#,
    },
    Example {
        name: "roll_day",
        form: Form::Request,
        json: r#"{"now_ms":86400000,"op":"roll_day"}"#,
    },
    Example {
        name: "checkpoint",
        form: Form::Request,
        json: r#"{"now_ms":86400000,"op":"checkpoint","name":"last_bar","value":"bar-at-86400000"}"#,
    },
    Example {
        name: "recover",
        form: Form::Request,
        json: r#"{"now_ms":86400000,"op":"recover"}"#,
    },
    Example {
        name: "sync_fills",
        form: Form::Request,
        json: r#"{"now_ms":86400000,"op":"sync_fills"}"#,
    },
    Example {
        name: "evaluate_exits",
        form: Form::Request,
        json: r#"{"now_ms":86400000,"op":"evaluate_exits","marks":[{"symbol":"BTC-USD","price":4100000}],"stop_loss":true,"take_profit":true}"#,
    },
    Example {
        name: "ok (exits evaluated)",
        form: Form::BookLine,
        json: r#"{"line":"ok","result":{"verification":"verified","orphans":[],"warnings":[],"exits":[{"intent_id":"250c05ac52e5e1de","reason":"stop_loss","realized_pnl":-200000}]}}"#,
    },
    Example {
        name: "venue place (exit)",
        form: Form::BookLine,
        json: r#"{"line":"venue","call":"place","order":{"client_order_id":"250c05ac52e5e1de-exit","symbol":"BTC-USD","side":"sell","size":2,"price":4100000,"reduce_only":true}}"#,
    },
    Example {
        name: "state",
        form: Form::Request,
        json: r#"{"now_ms":86400000,"op":"state"}"#,
    },
    Example {
        name: "ready",
        form: Form::BookLine,
        json: r#"{"line":"ready","protocol_version":1}"#,
    },
    Example {
        name: "venue place",
        form: Form::BookLine,
        json: r#"{"line":"venue","call":"place","order":{"client_order_id":"250c05ac52e5e1de","symbol":"BTC-USD","side":"buy","size":2,"price":4200000}}"#,
    },
    Example {
        name: "venue find_order",
        form: Form::BookLine,
        json: r#"{"line":"venue","call":"find_order","client_order_id":"250c05ac52e5e1de"}"#,
    },
    Example {
        name: "venue positions",
        form: Form::BookLine,
        json: r#"{"line":"venue","call":"positions"}"#,
    },
    Example {
        name: "venue cancel",
        form: Form::BookLine,
        json: r#"{"line":"venue","call":"cancel","client_order_id":"250c05ac52e5e1de"}"#,
    },
    Example {
        name: "ok (submit placed)",
        form: Form::BookLine,
        json: r#"{"line":"ok","result":{"outcome":"placed","intent_id":"250c05ac52e5e1de","client_order_id":"250c05ac52e5e1de","order_id":"V-250c05ac52e5e1de"}}"#,
    },
    Example {
        name: "ok (breaker)",
        form: Form::BookLine,
        json: r#"{"line":"ok","result":{"open":true,"reason":"manual_trip","failure_count":1}}"#,
    },
    Example {
        name: "error (refused)",
        form: Form::BookLine,
        json: r#"{"line":"error","problem":{"kind":"already_entered","message":"strategy momentum already entered window w-1"}}"#,
    },
    Example {
        name: "error (venue uncertain)",
        form: Form::BookLine,
        json: r#"{"line":"error","problem":{"kind":"venue_uncertain","message":"venue outcome for intent 250c05ac52e5e1de is uncertain: venue call timed out; the order may have been accepted","intent_id":"250c05ac52e5e1de","venue_error":{"kind":"timeout"}}}"#,
    },
    Example {
        name: "error (bad request)",
        form: Form::BookLine,
        json: r#"{"line":"error","problem":{"kind":"bad_request","message":"unknown variant `teleport`, expected one of `submit`, `close_position`, `trip_breaker`, `reset_breaker`, `breaker`, `roll_day`, `checkpoint`, `recover`, `sync_fills`, `state`"}}"#,
    },
    Example {
        name: "place accepted",
        form: Form::VenueReply,
        json: r#"{"reply":"place","result":{"ok":{"venue_order_id":"V-250c05ac52e5e1de","client_order_id":"250c05ac52e5e1de","symbol":"BTC-USD","side":"buy","size":2,"fills":[{"trade_id":"T-250c05ac52e5e1de-1","qty":1,"price":4200000}],"rejection":null,"cancelled":false}}}"#,
    },
    Example {
        name: "place duplicate",
        form: Form::VenueReply,
        json: r#"{"reply":"place","result":{"error":{"kind":"duplicate","client_order_id":"250c05ac52e5e1de"}}}"#,
    },
    Example {
        name: "cancel",
        form: Form::VenueReply,
        json: r#"{"reply":"cancel","result":{"ok":{"venue_order_id":"V-250c05ac52e5e1de","client_order_id":"250c05ac52e5e1de","symbol":"BTC-USD","side":"buy","size":2,"fills":[{"trade_id":"T-250c05ac52e5e1de-1","qty":1,"price":4200000}],"rejection":null,"cancelled":true}}}"#,
    },
    Example {
        name: "place rate limited",
        form: Form::VenueReply,
        json: r#"{"reply":"place","result":{"error":{"kind":"rate_limited","status":429,"retry_after_ms":2000}}}"#,
    },
    Example {
        name: "find_order not found",
        form: Form::VenueReply,
        json: r#"{"reply":"find_order","result":{"ok":null}}"#,
    },
    Example {
        name: "positions",
        form: Form::VenueReply,
        json: r#"{"reply":"positions","result":{"ok":[{"symbol":"BTC-USD","qty":2}]}}"#,
    },
];

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::{Form, EXAMPLES};
    use crate::{BookLine, RequestLine, VenueReply};

    fn round_trips<T: Serialize + DeserializeOwned>(name: &str, json: &str) {
        let parsed: T = serde_json::from_str(json)
            .unwrap_or_else(|error| panic!("example {name:?} does not parse: {error}"));
        let written = serde_json::to_value(&parsed).expect("serialises");
        let original: serde_json::Value = serde_json::from_str(json).expect("is JSON");
        assert_eq!(
            written, original,
            "example {name:?} does not write back unchanged"
        );
    }

    #[test]
    fn every_example_parses_and_writes_back_unchanged() {
        for example in EXAMPLES {
            match example.form {
                Form::Request => round_trips::<RequestLine>(example.name, example.json),
                Form::BookLine => round_trips::<BookLine>(example.name, example.json),
                Form::VenueReply => round_trips::<VenueReply>(example.name, example.json),
            }
        }
    }

    #[test]
    fn every_request_op_has_an_example() {
        let ops: Vec<String> = EXAMPLES
            .iter()
            .filter(|example| example.form == Form::Request)
            .map(|example| {
                let line: RequestLine = serde_json::from_str(example.json).expect("parses");
                line.request.op().to_owned()
            })
            .collect();
        for op in [
            "submit",
            "close_position",
            "trip_breaker",
            "reset_breaker",
            "breaker",
            "roll_day",
            "checkpoint",
            "recover",
            "sync_fills",
            "evaluate_exits",
            "state",
        ] {
            assert!(ops.iter().any(|seen| seen == op), "no example for op {op}");
        }
    }

    #[test]
    fn one_casing_convention_throughout() {
        // Every key and every enum value on the wire is snake_case: no CamelCase anywhere.
        fn check(value: &serde_json::Value, name: &str) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, inner) in map {
                        assert!(
                            !key.chars().any(char::is_uppercase),
                            "example {name:?}: key {key:?} is not snake_case"
                        );
                        check(inner, name);
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|item| check(item, name)),
                _ => {}
            }
        }
        for example in EXAMPLES {
            check(
                &serde_json::from_str(example.json).expect("is JSON"),
                example.name,
            );
        }
        let tags = serde_json::to_string(&crate::TripReason::ALL).expect("serialises");
        assert!(
            !tags.chars().any(char::is_uppercase),
            "trip reasons on the wire: {tags}"
        );
    }
}
