//! Exit codes, shared by every command.

/// The operation was cancelled (128 + SIGINT, as shells report Ctrl-C).
pub(crate) const EXIT_CANCELLED: i32 = 130;
/// The work failed, or the input could not be used.
pub(crate) const EXIT_FAILURE: i32 = 1;
