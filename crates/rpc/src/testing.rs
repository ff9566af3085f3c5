//! Test support (feature `testing`): what a reflection client such as
//! `grpcurl` or Python's grpcio-reflection asks a server, in either
//! reflection version, so each server's tests can show both work.

use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};

/// A version of the gRPC server reflection protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReflectionVersion {
    /// `grpc.reflection.v1`, what `grpcurl` tries first.
    V1,
    /// `grpc.reflection.v1alpha`, the only one Python's grpcio-reflection
    /// and older tools speak.
    V1Alpha,
}

/// What a server at `url` says over reflection `version`: the services it
/// lists, and the name of the file that defines `symbol`.
pub async fn reflect(
    url: &str,
    version: ReflectionVersion,
    symbol: &str,
) -> Result<(Vec<String>, String), Box<dyn std::error::Error + Send + Sync>> {
    let channel = Channel::from_shared(url.to_owned())?.connect().await?;
    // The requests a reflection client sends first: list, then describe.
    match version {
        ReflectionVersion::V1 => {
            use v1::server_reflection_request::MessageRequest;
            use v1::server_reflection_response::MessageResponse;
            let requests = [
                MessageRequest::ListServices(String::new()),
                MessageRequest::FileContainingSymbol(symbol.to_owned()),
            ]
            .map(|message| v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(message),
            });
            let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
            let mut answers = client
                .server_reflection_info(tokio_stream::iter(requests))
                .await?
                .into_inner();
            let mut services = Vec::new();
            let mut file = String::new();
            while let Some(answer) = answers.message().await? {
                match answer.message_response {
                    Some(MessageResponse::ListServicesResponse(list)) => {
                        services = list.service.into_iter().map(|s| s.name).collect();
                    }
                    Some(MessageResponse::FileDescriptorResponse(files)) => {
                        file = file_name(&files.file_descriptor_proto)?;
                    }
                    other => return Err(format!("unexpected answer {other:?}").into()),
                }
            }
            Ok((services, file))
        }
        ReflectionVersion::V1Alpha => {
            use v1alpha::server_reflection_request::MessageRequest;
            use v1alpha::server_reflection_response::MessageResponse;
            let requests = [
                MessageRequest::ListServices(String::new()),
                MessageRequest::FileContainingSymbol(symbol.to_owned()),
            ]
            .map(|message| v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(message),
            });
            let mut client =
                v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
            let mut answers = client
                .server_reflection_info(tokio_stream::iter(requests))
                .await?
                .into_inner();
            let mut services = Vec::new();
            let mut file = String::new();
            while let Some(answer) = answers.message().await? {
                match answer.message_response {
                    Some(MessageResponse::ListServicesResponse(list)) => {
                        services = list.service.into_iter().map(|s| s.name).collect();
                    }
                    Some(MessageResponse::FileDescriptorResponse(files)) => {
                        file = file_name(&files.file_descriptor_proto)?;
                    }
                    other => return Err(format!("unexpected answer {other:?}").into()),
                }
            }
            Ok((services, file))
        }
    }
}

/// The name of the first (the defining) file of a descriptor answer.
fn file_name(files: &[Vec<u8>]) -> Result<String, prost::DecodeError> {
    use prost::Message as _;
    let first = files.first().map(Vec::as_slice).unwrap_or_default();
    Ok(prost_types::FileDescriptorProto::decode(first)?
        .name
        .unwrap_or_default())
}
