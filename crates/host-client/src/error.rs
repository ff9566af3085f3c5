//! [`HostError`]: what can go wrong talking to a host, each case naming the
//! host's URL. Built from `tonic::Status` and transport errors here, so
//! callers never see gRPC types.

use std::fmt;

use orchestrator_core::{Cancelled, error_chain};

/// Which host a client talks to; names it in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    Training,
    Data,
    /// The operations API of `trdr serve`.
    Operations,
}

impl fmt::Display for HostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostKind::Training => "training host",
            HostKind::Data => "data host",
            HostKind::Operations => "trdr server",
        })
    }
}

/// Why a call to a host did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error("{kind} URL {url:?} is not valid: {reason}")]
    BadUrl {
        kind: HostKind,
        url: String,
        reason: String,
    },
    /// No connection could be set up before the deadline.
    #[error("{kind} at {url} is not reachable: {reason}")]
    Unreachable {
        kind: HostKind,
        url: String,
        reason: String,
    },
    /// The connection broke, or the host stopped answering, during a call.
    #[error("{kind} lost: {url} stopped answering ({reason})")]
    Lost {
        kind: HostKind,
        url: String,
        reason: String,
    },
    /// The host wants another auth token.
    #[error("{kind} at {url} refused the call: {message}")]
    Unauthenticated {
        kind: HostKind,
        url: String,
        message: String,
    },
    /// A call that must answer quickly (a cancel) got no answer in time.
    #[error("{kind} at {url} did not answer within {} s", .waited.as_secs_f64())]
    NoAnswer {
        kind: HostKind,
        url: String,
        waited: std::time::Duration,
    },
    /// The host answered that the request itself is wrong (bad argument,
    /// unknown session, wrong state).
    #[error("{kind} at {url} rejected the request: {message}")]
    Rejected {
        kind: HostKind,
        url: String,
        message: String,
    },
    /// The host failed on its side.
    #[error("{kind} at {url} failed: {message}")]
    Remote {
        kind: HostKind,
        url: String,
        message: String,
    },
    /// The host sent something this client cannot read.
    #[error("{kind} at {url} sent an invalid message: {message}")]
    Protocol {
        kind: HostKind,
        url: String,
        message: String,
    },
    /// The caller's token was cancelled before the host answered; the
    /// source says why and where, so an operation that ends with this
    /// error ends `cancelled`.
    #[error("call to the {kind} at {url} cancelled")]
    Cancelled {
        kind: HostKind,
        url: String,
        #[source]
        cancelled: Cancelled,
    },
}

impl HostError {
    /// The URL of the host the error is about.
    pub fn url(&self) -> &str {
        match self {
            HostError::BadUrl { url, .. }
            | HostError::Unreachable { url, .. }
            | HostError::Lost { url, .. }
            | HostError::NoAnswer { url, .. }
            | HostError::Unauthenticated { url, .. }
            | HostError::Rejected { url, .. }
            | HostError::Remote { url, .. }
            | HostError::Protocol { url, .. }
            | HostError::Cancelled { url, .. } => url,
        }
    }

    /// Maps a status from a call to `kind` at `url`.
    pub(crate) fn from_status(kind: HostKind, url: &str, status: &tonic::Status) -> Self {
        use tonic::Code;
        let url = url.to_owned();
        let message = status.message().to_owned();
        match status.code() {
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
                if is_transport_failure(status) =>
            {
                HostError::Lost {
                    kind,
                    url,
                    reason: transport_reason(status),
                }
            }
            Code::Unavailable => HostError::Lost {
                kind,
                url,
                reason: transport_reason(status),
            },
            Code::Unauthenticated | Code::PermissionDenied => {
                HostError::Unauthenticated { kind, url, message }
            }
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::ResourceExhausted => HostError::Rejected { kind, url, message },
            _ => HostError::Remote {
                kind,
                url,
                message: format!("{}: {message}", code_name(status.code())),
            },
        }
    }
}

/// A status tonic made up because the connection failed, rather than one
/// the host sent: it carries the transport error as its source.
fn is_transport_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// The transport error's chain, else the status message.
fn transport_reason(status: &tonic::Status) -> String {
    match std::error::Error::source(status).map(error_chain) {
        Some(reason) if !reason.is_empty() => reason,
        _ => status.message().to_owned(),
    }
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:50052";

    #[test]
    fn statuses_the_host_sent_keep_its_message_and_name_the_url() {
        let cases = [
            (
                tonic::Status::unauthenticated("wrong auth token"),
                "refused the call: wrong auth token",
            ),
            (
                tonic::Status::not_found("no session sess_1"),
                "rejected the request: no session sess_1",
            ),
            (
                tonic::Status::internal("disk full"),
                "failed: internal: disk full",
            ),
        ];
        for (status, expected) in cases {
            let error = HostError::from_status(HostKind::Training, URL, &status);
            assert_eq!(error.url(), URL);
            assert_eq!(
                error.to_string(),
                format!("training host at {URL} {expected}")
            );
        }
    }

    #[test]
    fn an_unavailable_host_mid_call_is_lost() {
        let error = HostError::from_status(
            HostKind::Data,
            URL,
            &tonic::Status::unavailable("connection reset"),
        );
        assert!(matches!(error, HostError::Lost { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("data host lost: {URL} stopped answering (connection reset)")
        );
    }
}
