//! Fuzz harness of the strategy parser: the libFuzzer target `strategy_yaml`
//! in `fuzz/` calls it, and the property test below runs it on stable in CI
//! with a fixed seed.

use std::path::Path;

use crate::{StrategyConfig, StrategyError, parse_strategy};

/// Parses the bytes as a strategy file. It must return for any input; an
/// error must point at a real line and column of the text, and an accepted
/// strategy must survive the JSON round trip a training host relies on.
/// Returns whether the text was accepted as a strategy.
pub fn strategy_yaml(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match parse_strategy(text, Path::new("fuzz.yaml")) {
        Ok(parsed) => {
            let json = serde_json::to_string(&parsed.config).expect("a strategy serializes");
            let back: StrategyConfig =
                serde_json::from_str(&json).expect("a serialized strategy parses back");
            assert_eq!(
                back, parsed.config,
                "the JSON round trip changed the strategy"
            );
            true
        }
        Err(StrategyError::Invalid { line, column, .. }) => {
            let lines = yaml_lines(text);
            assert!(line >= 1 && line <= lines + 1, "line {line} of {lines}");
            assert!(column >= 1, "column {column}");
            false
        }
        Err(other) => panic!("parsing text gave a non-parse error: {other}"),
    }
}

/// Lines as YAML counts them: `\r\n`, `\r` and `\n` each end one (a
/// lone `\r` too, as old Mac files have it and editors show it).
fn yaml_lines(text: &str) -> usize {
    let breaks = text.replace("\r\n", "\n").matches(['\r', '\n']).count();
    breaks + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// YAML and strategy pieces that mutations splice in.
    const YAML_TOKENS: &[&str] = &[
        "\n",
        "\n  ",
        "\n- ",
        ": ",
        "- ",
        "{",
        "}",
        "[",
        "]",
        ", ",
        "&a ",
        "*a",
        "<<: ",
        "!!str ",
        "? ",
        "|\n",
        ">-\n",
        "\"",
        "'",
        "#",
        "~",
        "null",
        "true",
        "1e400",
        "-0",
        "0x10",
        "\t",
        "name: ",
        "period: ",
        "symbols: ",
        "timeframes: ",
        "list: ",
        "indicators:\n",
        "1h",
        "\u{feff}",
        "\u{e9}",
        "---\n",
        "...\n",
    ];

    /// Found by libFuzzer: an error after lone `\r`s was reported at "line 58
    /// of 43". Right by YAML's count; the harness now counts as YAML does.
    #[test]
    fn lone_carriage_returns_count_as_line_breaks() {
        assert_eq!(yaml_lines("a\rb\r\nc\nd"), 4);
        let text = "name: x\r\r\r\rmodel: [\n";
        match parse_strategy(text, Path::new("cr.yaml")) {
            Err(StrategyError::Invalid { line, .. }) => assert!(line <= yaml_lines(text)),
            other => panic!("expected a parse error, got {other:?}"),
        }
        assert!(!strategy_yaml(text.as_bytes()));
    }

    #[test]
    fn strategy_yaml_never_panics_and_names_real_positions() {
        let accepted = fuzz_corpus::check("strategy_yaml", 2_000, YAML_TOKENS, strategy_yaml);
        assert!(
            accepted > 75,
            "only {accepted} of 2000 inputs were accepted"
        );
    }
}
