//! [`error_chain`]: an error and its sources as one line, each text once.

use std::error::Error;

/// `outer: inner: root`, like anyhow's `{:#}`, but saying each thing once.
///
/// Many errors quote their source in their own message (`training
/// cancelled: {0}`), so a source whose text the line already contains,
/// at its end or inside it, is skipped, as is an empty one; its own
/// sources are still read.
///
/// ```
/// #[derive(Debug, thiserror::Error)]
/// #[error("training cancelled: {0}")]
/// struct Quoting(#[source] std::io::Error);
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("training failed")]
/// struct Outer(#[source] Quoting);
///
/// let error = Outer(Quoting(std::io::Error::other("interrupted")));
/// assert_eq!(
///     orchestrator_core::error_chain(&error),
///     "training failed: training cancelled: interrupted"
/// );
/// ```
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if text.is_empty() {
            text = inner_text;
        } else if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a fixed message and an optional source.
    #[derive(Debug)]
    struct Link(&'static str, Option<Box<Link>>);

    impl std::fmt::Display for Link {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Link {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|link| link as _)
        }
    }

    fn chain(texts: &[&'static str]) -> Link {
        texts
            .iter()
            .rev()
            .fold(None, |source, text| Some(Link(text, source.map(Box::new))))
            .unwrap()
    }

    #[test]
    fn an_error_chain_reads_outer_to_inner() {
        assert_eq!(error_chain(&chain(&["outer"])), "outer");
        assert_eq!(error_chain(&chain(&["outer", "inner"])), "outer: inner");
        assert_eq!(
            error_chain(&chain(&["outer", "middle", "root"])),
            "outer: middle: root"
        );
    }

    #[test]
    fn a_source_the_outer_text_already_ends_with_is_said_once() {
        assert_eq!(
            error_chain(&chain(&["loading data: no file", "no file"])),
            "loading data: no file"
        );
    }

    #[test]
    fn a_source_quoted_inside_the_outer_text_is_said_once() {
        let cancelled = "cancelled by user: interrupted (Ctrl-C) (stopped during training)";
        let error = chain(&[
            "training failed",
            "training cancelled: cancelled by user: interrupted (Ctrl-C) (stopped during training)",
            cancelled,
        ]);
        assert_eq!(
            error_chain(&error),
            format!("training failed: training cancelled: {cancelled}")
        );
        // Quoted in the middle, e.g. with a note after it.
        assert_eq!(
            error_chain(&chain(&["stopped (timed out) early", "timed out"])),
            "stopped (timed out) early"
        );
    }

    #[test]
    fn a_skipped_source_still_leads_to_its_own_sources() {
        assert_eq!(
            error_chain(&chain(&[
                "cannot read: no such file",
                "no such file",
                "os error 2"
            ])),
            "cannot read: no such file: os error 2"
        );
    }

    #[test]
    fn empty_texts_add_no_separators() {
        assert_eq!(error_chain(&chain(&["outer", "", "root"])), "outer: root");
        assert_eq!(error_chain(&chain(&["", "inner"])), "inner");
    }
}
