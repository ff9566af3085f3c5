//! The operations API server (trdr serve): trainings and data loads over gRPC, watched and cancelled from any terminal.
