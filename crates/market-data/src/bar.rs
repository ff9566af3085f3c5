//! Bars and symbols: the values every other module of the crate works on.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One OHLCV bar; `timestamp` is when the bar opens, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub timestamp: DateTime<Utc>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// A market symbol such as `EURUSD` or `BRK.B`: letters, digits, `.`, `_`
/// and `-` only, so it can name a file inside the data directory and never
/// outside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(String);

impl Symbol {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The text cannot be a symbol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid symbol {0:?}: use only letters, digits, '.', '_' and '-' (not only dots)")]
pub struct InvalidSymbol(pub String);

impl FromStr for Symbol {
    type Err = InvalidSymbol;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        let valid = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(allowed)
            && !text.bytes().all(|b| b == b'.');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidSymbol(text.to_owned()))
        }
    }
}

impl TryFrom<String> for Symbol {
    type Error = InvalidSymbol;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Symbol> for String {
    fn from(symbol: Symbol) -> Self {
        symbol.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_cannot_name_paths() {
        for good in [
            "EURUSD",
            "BRK.B",
            "BTC-USD",
            "es_f",
            "^GSPC".trim_start_matches('^'),
        ] {
            assert!(good.parse::<Symbol>().is_ok(), "{good}");
        }
        for bad in [
            "", ".", "..", "../etc", "a/b", "a\\b", "EUR USD", "^GSPC", "é",
        ] {
            assert!(bad.parse::<Symbol>().is_err(), "{bad:?} was accepted");
        }
    }
}
