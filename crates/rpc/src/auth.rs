//! A shared secret between trdr processes: servers started with a token
//! refuse every call that does not carry it, with `UNAUTHENTICATED`.
//!
//! Clients send `authorization: Bearer <token>`. The token comes from a
//! flag or [`AUTH_TOKEN_ENV`]; without one, servers accept every call (they
//! bind loopback by default).

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The environment variable servers and clients read the token from.
pub const AUTH_TOKEN_ENV: &str = "TRDR_AUTH_TOKEN";

const HEADER: &str = "authorization";
const SCHEME: &str = "Bearer ";

/// Server side: refuses calls without the expected token.
#[derive(Clone)]
pub struct RequireToken {
    expected: Option<Vec<u8>>,
}

impl std::fmt::Debug for RequireToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireToken")
            .field("enabled", &self.expected.is_some())
            .finish()
    }
}

impl RequireToken {
    /// Checks for `token`; `None` (or an empty token) lets every call through.
    pub fn new(token: Option<&str>) -> Self {
        Self {
            expected: token
                .filter(|token| !token.is_empty())
                .map(|token| format!("{SCHEME}{token}").into_bytes()),
        }
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        match request.metadata().get(HEADER) {
            Some(given) if constant_time_eq(given.as_bytes(), expected) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong auth token")),
            None => Err(Status::unauthenticated(format!(
                "this server needs an auth token (set {AUTH_TOKEN_ENV} or pass --auth-token)"
            ))),
        }
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right (the dashboard checks its
/// tokens with it too).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Client side: adds the token, when there is one, to every call.
#[derive(Clone)]
pub struct SendToken {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl std::fmt::Debug for SendToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendToken")
            .field("enabled", &self.header.is_some())
            .finish()
    }
}

/// A token that cannot travel in a header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the auth token must be printable ASCII")]
pub struct InvalidToken;

impl SendToken {
    /// Sends `token`; `None` (or an empty token) sends nothing.
    pub fn new(token: Option<&str>) -> Result<Self, InvalidToken> {
        let header = token
            .filter(|token| !token.is_empty())
            .map(|token| format!("{SCHEME}{token}").parse().map_err(|_| InvalidToken))
            .transpose()?;
        Ok(Self { header })
    }

    /// `message` as a request that carries the token: one call on a client
    /// made without this interceptor.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(header) = &self.header {
            request.metadata_mut().insert(HEADER, header.clone());
        }
        request
    }
}

impl Interceptor for SendToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request.metadata_mut().insert(HEADER, header.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_with(server: Option<&str>, client: Option<&str>) -> Result<(), Status> {
        let request = SendToken::new(client).unwrap().call(Request::new(()))?;
        RequireToken::new(server).call(request).map(drop)
    }

    #[test]
    fn a_server_without_token_accepts_everyone() {
        assert!(call_with(None, None).is_ok());
        assert!(call_with(None, Some("anything")).is_ok());
        assert!(call_with(Some(""), None).is_ok());
    }

    #[test]
    fn a_server_with_token_refuses_a_missing_or_wrong_one() {
        assert!(call_with(Some("s3cret"), Some("s3cret")).is_ok());
        let missing = call_with(Some("s3cret"), None).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains(AUTH_TOKEN_ENV));
        let wrong = call_with(Some("s3cret"), Some("s3cre")).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert_eq!(wrong.message(), "wrong auth token");
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_at_once() {
        assert_eq!(
            SendToken::new(Some("line\nbreak")).unwrap_err(),
            InvalidToken
        );
    }
}
