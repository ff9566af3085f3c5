//! gRPC clients of the training host and data host: progress in, cancellation out, every failure naming the host.
