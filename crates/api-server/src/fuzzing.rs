//! Fuzz harness of the request checks of `trdr serve`: the libFuzzer target
//! `api_requests` in `fuzz/` calls it, and the property test below runs it
//! on stable in CI with a fixed seed.

use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;

use prost::Message;
use rpc::proto;
use tonic::Code;
use training_manager::StrategySource;

use crate::service::{cancel_request, list_filter, load_request, train_request};

/// The first byte picks the request (`StartTraining`, `StartDataLoad`,
/// `ListOperations`, `CancelOperation`, which shares its id check with
/// `GetOperation`, `WatchOperation` and `ResumeOperation`); the rest is the
/// request as it comes off the wire. A request the server would pass on
/// must hold only values that print and parse back the same; a refused one is
/// `INVALID_ARGUMENT` or `NOT_FOUND` with a message naming the field or
/// file, and a strategy file it names must lie inside the strategies
/// directory (here the current one). Returns whether the request was
/// accepted.
pub fn api_requests(data: &[u8]) -> bool {
    let Some((&kind, body)) = data.split_first() else {
        return false;
    };
    let checked = match kind % 4 {
        0 => proto::StartTrainingOperationRequest::decode(body).map(|wire| {
            let strategies = Path::new(".");
            let checked = train_request(wire.clone(), strategies);
            checked.map(|request| {
                match &request.strategy {
                    StrategySource::File(path) => {
                        assert!(path.is_file());
                        assert!(path.starts_with(strategies.canonicalize().unwrap()));
                    }
                    StrategySource::Text { origin, .. } => assert!(origin.len() <= 1024),
                    StrategySource::Named(name) => panic!("the name {name:?} was not resolved"),
                }
                assert_eq!(request.symbols.is_some(), !wire.symbols.is_empty());
                request.symbols.iter().flatten().for_each(round_trips);
                request.timeframes.iter().flatten().for_each(round_trips);
                request.backend.iter().for_each(round_trips);
                assert_eq!(request.epochs, wire.epochs);
                "strategy_name StartTrainingOperationRequest. StrategyText."
            })
        }),
        1 => proto::StartDataLoadRequest::decode(body).map(|wire| {
            load_request(wire).map(|request| {
                round_trips(&request.symbol);
                round_trips(&request.timeframe);
                round_trips(&request.mode);
                "symbol timeframe mode StartDataLoadRequest."
            })
        }),
        2 => proto::ListOperationsRequest::decode(body).map(|wire| {
            list_filter(&wire).map(|filter| {
                assert_eq!(filter.statuses.len(), wire.statuses.len());
                assert_eq!(filter.kind.is_some(), wire.kind.is_some());
                "statuses kind"
            })
        }),
        _ => proto::CancelOperationRequest::decode(body).map(|wire| {
            cancel_request(wire.clone()).map(|(id, _)| {
                assert_eq!(id.as_str(), wire.id);
                round_trips(&id);
                "id"
            })
        }),
    };
    // Bytes that are no such message never reach our checks.
    let Ok(checked) = checked else {
        return false;
    };
    match checked {
        Ok(_) => true,
        Err(status) => {
            assert!(
                matches!(status.code(), Code::InvalidArgument | Code::NotFound),
                "{status:?}"
            );
            let message = status.message();
            let names_a_field = [
                "strategy: ",
                "strategy_name",
                "strategy_text.",
                "StrategyText.",
                "symbols[",
                "timeframes[",
                "backend: ",
                "symbol: ",
                "timeframe: ",
                "mode: ",
                "StartTrainingOperationRequest.",
                "StartDataLoadRequest.",
                "statuses: ",
                "kind: ",
                "id: ",
            ]
            .iter()
            .any(|field| message.contains(field));
            assert!(names_a_field, "{message:?} names no field");
            false
        }
    }
}

/// A value the server accepted prints as text that parses back to it.
fn round_trips<T>(value: &T)
where
    T: Display + FromStr + PartialEq + std::fmt::Debug,
    T::Err: std::fmt::Debug,
{
    let text = value.to_string();
    let back: T = text.parse().expect("an accepted value parses back");
    assert_eq!(&back, value, "{text:?} does not round-trip");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of requests that mutations splice in (after the selector
    /// byte, they land inside encoded strings and lengths).
    const REQUEST_TOKENS: &[&str] = &[
        "EURUSD",
        "..",
        "/",
        "1h",
        "4H",
        "1w",
        "flex",
        "ndarray",
        "tail",
        "full",
        "op_training_20260101_000000_deadbeef",
        "\u{0}",
        "\u{ff}",
        "\n\u{2}",
        "\u{12}\u{3}",
        "\u{1a}\u{0}",
        "\u{22}\u{4}\u{8}\u{1}\u{10}\u{1}",
        "Cargo.toml",
        "\u{e9}",
        "../",
        "/etc/passwd",
    ];

    #[test]
    fn api_requests_never_panic_and_name_the_field_they_refuse() {
        let accepted = fuzz_corpus::check("api_requests", 3_000, REQUEST_TOKENS, api_requests);
        assert!(
            accepted > 100,
            "only {accepted} of 3000 requests were accepted"
        );
    }
}
