//! Which burn backend runs a model, chosen at run time.
//!
//! Since burn 0.22 tensors and modules carry no backend type parameter: the
//! [`Device`] a module is created on decides which backend executes it, and
//! autodiff is a property of the device (`device.autodiff()`). So the run-time
//! choice is simply which device the trainer creates; no generic code has to be
//! instantiated per backend.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// A CPU backend burn can train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// burn-flex, burn's pure-Rust CPU backend since 0.22.
    #[default]
    Flex,
    /// burn-ndarray, deprecated by burn since 0.22 in favour of flex; kept
    /// for comparison and for artifacts that name it.
    #[serde(rename = "ndarray")]
    NdArray,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Flex, Backend::NdArray];

    /// The name used on command lines and in artifacts.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::NdArray => "ndarray",
        }
    }

    /// A device of this backend, without autodiff.
    pub(crate) fn device(self) -> Device {
        match self {
            Backend::Flex => Device::flex(),
            // Deprecated upstream, still supported here on purpose (see the variant).
            #[allow(deprecated)]
            Backend::NdArray => Device::ndarray(),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that width and alignment flags work in tables.
        f.pad(self.as_str())
    }
}

/// The text names no supported backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}; expected one of: flex, ndarray")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Self::ALL
            .into_iter()
            .find(|backend| backend.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownBackend(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for backend in Backend::ALL {
            assert_eq!(backend.to_string().parse::<Backend>(), Ok(backend));
            let json = serde_json::to_string(&backend).unwrap();
            assert_eq!(json, format!("\"{backend}\""));
            assert_eq!(serde_json::from_str::<Backend>(&json).unwrap(), backend);
        }
        assert_eq!(" NdArray ".parse::<Backend>(), Ok(Backend::NdArray));
        assert_eq!(
            "wgpux".parse::<Backend>().unwrap_err().to_string(),
            "unknown backend \"wgpux\"; expected one of: flex, ndarray"
        );
    }
}
