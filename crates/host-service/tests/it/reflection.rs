//! Server reflection in both versions, as `grpcurl` (v1) and Python's
//! grpcio-reflection (v1alpha) ask: the host lists its services and
//! describes them, without the token its own services need.

use rpc::testing::{ReflectionVersion, reflect};

use super::*;

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_and_describe_the_host_s_services() {
    let host = TestHost::start_with(root().join("data"), 1, Some("s3cret")).await;
    let url = format!("http://{}", host.addr);
    for version in [ReflectionVersion::V1, ReflectionVersion::V1Alpha] {
        let (mut services, file) = reflect(&url, version, "trdr.v1.TrainingHost")
            .await
            .unwrap();
        services.sort();
        assert_eq!(
            services,
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "trdr.v1.DataHost",
                "trdr.v1.TrainingHost",
            ],
            "{version:?}"
        );
        assert_eq!(file, "trdr/v1/training_host.proto", "{version:?}");
    }
    host.stop().await.unwrap();
}
