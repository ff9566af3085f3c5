//! Fuzz harness of the request checks of `trdr host-service`: the
//! libFuzzer target `host_requests` in `fuzz/` calls it, and the property
//! test below runs it on stable in CI with a fixed seed.

use prost::Message;
use rpc::proto;
use strategy::{StrategyConfig, TrainingRequest};
use tonic::Code;

use crate::data::fetch_request;

/// The first byte picks the request (`StartTraining` or `FetchBars`); the
/// rest is the request as it comes off the wire. An accepted training has
/// its bounds in order, at least one epoch when it overrides them, and a
/// strategy that survives the JSON round trip; accepted bars have their
/// bounds in order. A refused request is `INVALID_ARGUMENT` naming the
/// field. Returns whether the request was accepted.
pub fn host_requests(data: &[u8]) -> bool {
    let Some((&kind, body)) = data.split_first() else {
        return false;
    };
    let checked = if kind % 2 == 0 {
        proto::StartTrainingRequest::decode(body).map(|wire| {
            TrainingRequest::try_from(wire)
                .map(|request| {
                    if let (Some(start), Some(end)) = (request.start(), request.end()) {
                        assert!(start <= end);
                    }
                    assert_ne!(request.options().epochs, Some(0));
                    assert!(request.options().check_every_batches > 0);
                    let json = serde_json::to_string(request.strategy()).expect("serializes");
                    let back: StrategyConfig = serde_json::from_str(&json).expect("parses back");
                    assert_eq!(&back, request.strategy());
                })
                .map_err(tonic::Status::from)
        })
    } else {
        proto::FetchBarsRequest::decode(body).map(|wire| {
            fetch_request(wire).map(|request| {
                if let (Some(start), Some(end)) = (request.start, request.end) {
                    assert!(start <= end);
                }
                assert_eq!(
                    request.symbol.to_string().parse().ok(),
                    Some(request.symbol)
                );
                assert_eq!(
                    request.timeframe.to_string().parse().ok(),
                    Some(request.timeframe)
                );
            })
        })
    };
    // Bytes that are no such message never reach our checks.
    let Ok(checked) = checked else {
        return false;
    };
    match checked {
        Ok(()) => true,
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            let message = status.message();
            let names_a_field = [
                "StartTrainingRequest.",
                "TrainingOptions.",
                "FetchBarsRequest.",
            ]
            .iter()
            .any(|field| message.contains(field));
            assert!(names_a_field, "{message:?} names no field");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of requests that mutations splice in.
    const REQUEST_TOKENS: &[&str] = &[
        "\"",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "null",
        "0",
        "-1",
        "1e999",
        "\"name\"",
        "\"model\"",
        "\"symbols\"",
        "EURUSD",
        "..",
        "1h",
        "flex",
        "cuda",
        "\u{0}",
        "\u{ff}",
        "\u{12}\u{4}",
        "\u{22}\u{2}\u{10}\u{0}",
        "\u{e9}",
        "\\u0000",
    ];

    #[test]
    fn host_requests_never_panic_and_name_the_field_they_refuse() {
        let accepted = fuzz_corpus::check("host_requests", 2_000, REQUEST_TOKENS, host_requests);
        assert!(
            accepted > 50,
            "only {accepted} of 2000 requests were accepted"
        );
    }
}
