//! The training host (trdr host-service): runs a LocalTrainer per gRPC session, streams progress, honours cancel, serves bars.
