//! The wgpu backend end to end, on Mesa's software Vulkan driver
//! (lavapipe), which runs the compute shaders a GPU would on the CPU: a
//! training that matches the CPU run and names its adapter, Ctrl-C, and a
//! training host started on wgpu. Built only with the `wgpu` feature, which
//! `cargo xtask ci` enables (and installs lavapipe for).

use std::os::unix::fs::PermissionsExt as _;

use orchestrator_core::OperationStatus;

use super::*;

/// lavapipe's driver manifest: pinned, since without a Vulkan driver wgpu
/// falls back to OpenGL and would pass these tests on the wrong API.
fn lavapipe_icd() -> String {
    format!(
        "/usr/share/vulkan/icd.d/lvp_icd.{}.json",
        std::env::consts::ARCH
    )
}

/// `trdr` (see [`trdr`]) with wgpu pinned to lavapipe and a private runtime
/// folder under `state` (lavapipe warns on every start without one).
fn trdr_on_lavapipe(state: &Path) -> Command {
    let runtime = state.join("xdg-runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut command = trdr(state);
    command
        .env("VK_ICD_FILENAMES", lavapipe_icd())
        .env("XDG_RUNTIME_DIR", runtime)
        .env_remove("CUBECL_WGPU_DEFAULT_DEVICE")
        .env_remove("TRDR_AUTH_TOKEN");
    command
}

/// The result of a completed `--json` training.
fn result_of(output: &Output) -> serde_json::Value {
    assert_exit(output, 0);
    let last = json_events(output).pop().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    last["operation"]["result"].clone()
}

/// The device a summary names ran on lavapipe, through Vulkan.
#[track_caller]
fn assert_on_lavapipe(result: &serde_json::Value) {
    assert_eq!(result["backend"], "wgpu", "{result}");
    let device = result["device"].as_str().unwrap();
    assert!(
        device.starts_with("llvmpipe") && device.contains(" on Vulkan "),
        "ran on {device:?}, not lavapipe through Vulkan"
    );
}

#[test]
fn slow_a_wgpu_training_matches_the_cpu_run_and_names_its_adapter() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let train = |backend: &str| {
        trdr_on_lavapipe(state.path())
            .arg("train")
            .arg(repo().join("strategies/eurusd_mlp.yaml"))
            .args([
                "--epochs",
                "3",
                "--backend",
                backend,
                "--json",
                "--data-dir",
            ])
            .arg(sample_data())
            .arg("--models-dir")
            .arg(models.path())
            .output()
            .unwrap()
    };
    let gpu = result_of(&train("wgpu"));
    let cpu = result_of(&train("flex"));
    assert_on_lavapipe(&gpu);
    assert_eq!(cpu["device"], "cpu");

    // Same seed, same data: GPU sums in another order, so close, not equal.
    let accuracy = |result: &serde_json::Value| result["metrics"]["accuracy"].as_f64().unwrap();
    assert!(
        (accuracy(&gpu) - accuracy(&cpu)).abs() <= 0.01,
        "test accuracy {} on wgpu, {} on flex",
        accuracy(&gpu),
        accuracy(&cpu)
    );
    let losses = |result: &serde_json::Value| -> Vec<f64> {
        result["report"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|epoch| epoch["train_loss"].as_f64().unwrap())
            .collect()
    };
    let (gpu_losses, cpu_losses) = (losses(&gpu), losses(&cpu));
    assert_eq!(gpu_losses.len(), cpu_losses.len());
    for (gpu_loss, cpu_loss) in gpu_losses.iter().zip(&cpu_losses) {
        assert!(
            (gpu_loss - cpu_loss).abs() <= 1e-3 * cpu_loss,
            "train losses {gpu_losses:?} on wgpu, {cpu_losses:?} on flex"
        );
    }
}

#[test]
fn slow_ctrl_c_stops_a_wgpu_training_with_a_checkpoint_as_on_the_cpu() {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let strategy = state.path().join("mlp.yaml");
    std::fs::write(&strategy, example_without_early_stopping("eurusd_mlp.yaml")).unwrap();
    let mut train = trdr_on_lavapipe(state.path());
    train
        .arg("train")
        .arg(&strategy)
        .args([
            "--epochs",
            "500",
            "--backend",
            "wgpu",
            "--json",
            "--data-dir",
        ])
        .arg(sample_data())
        .arg("--models-dir")
        .arg(models.path());
    let id = interrupt_at_epoch(&mut train, 2);
    let stopped = stored(state.path(), &id);
    assert_eq!(stopped.status, OperationStatus::Cancelled);
    let checkpoint = stopped.checkpoint.expect("a checkpoint recorded on Ctrl-C");
    assert!(checkpoint.epoch < 500, "{checkpoint:?}");
    assert!(
        manifests_under(models.path()).is_empty(),
        "a model was saved"
    );
}

#[test]
fn slow_a_host_started_on_wgpu_trains_a_request_naming_no_backend_there() {
    let state = tempfile::tempdir().unwrap();
    let host_models = tempfile::tempdir().unwrap();
    let local_models = tempfile::tempdir().unwrap();
    let host_state = state.path().join("host");
    std::fs::create_dir_all(&host_state).unwrap();
    let mut host = trdr_on_lavapipe(&host_state);
    host.args([
        "host-service",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "wgpu",
    ])
    .arg("--data-dir")
    .arg(sample_data())
    .arg("--models-dir")
    .arg(host_models.path());
    let host = Listening::start(host);

    let output = super::host::train_on(
        &host.url,
        state.path(),
        local_models.path(),
        "eurusd_mlp.yaml",
        1,
    )
    .output()
    .unwrap();
    let result = result_of(&output);
    assert_on_lavapipe(&result);

    // `ops show` says where it ran and on what.
    let id = json_events(&output).pop().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = trdr(state.path())
        .args(["ops", "show", &id])
        .output()
        .unwrap();
    assert_exit(&shown, 0);
    let shown = text(&shown.stdout);
    assert!(
        shown.contains(&format!("runs on    {}", host.url)),
        "{shown}"
    );
    assert!(shown.contains(r#""backend": "wgpu""#), "{shown}");
    assert!(shown.contains(r#""device": "llvmpipe"#), "{shown}");
}
