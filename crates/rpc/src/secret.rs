//! [`Secret`]: a string that stays out of logs and `Debug` output.

use std::fmt;

/// A secret, such as the shared auth token: its `Debug` says only that it
/// is set, so options holding it can derive `Debug` and be logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `secret`, or `None` when it is empty (an empty token means none).
    pub fn new(secret: impl Into<String>) -> Option<Self> {
        let secret = secret.into();
        (!secret.is_empty()).then_some(Self(secret))
    }

    /// The secret itself, for the one place that sends or checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<set>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_and_empty_is_none() {
        let secret = Secret::new("s3cret").unwrap();
        assert_eq!(format!("{secret:?}"), "<set>");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(<set>)");
        assert_eq!(secret.expose(), "s3cret");
        assert_eq!(Secret::new(""), None);
    }
}
