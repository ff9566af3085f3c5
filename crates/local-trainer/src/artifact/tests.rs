//! Saving and loading artifacts: round trip, versions, and saves that must leave nothing behind.

use std::error::Error as _;

use orchestrator_core::{CancelReason, Cancelled};
use strategy::ModelKind;

use super::*;
use crate::test_data;
use crate::{TrainOptions, train};

fn trained(kind: ModelKind) -> (StrategyConfig, PreparedData, TrainedModel, Metrics) {
    let mut strategy = test_data::strategy(kind);
    strategy.model.epochs = 2;
    let data = test_data::prepared_data(3);
    let token = CancellationToken::new();
    let trained = train(
        &strategy,
        &data,
        &TrainOptions::default(),
        &token,
        &mut |_| {},
    )
    .unwrap();
    let metrics = trained.evaluate(&data, &token).unwrap();
    (strategy, data, trained, metrics)
}

/// Names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn save_load_predict_reproduces_the_metrics_and_versions_count_up() {
    let (strategy, data, trained, metrics) = trained(ModelKind::Mlp);
    let models = tempfile::tempdir().unwrap();
    let token = CancellationToken::new();

    let first = save_artifact(models.path(), &strategy, &data, &trained, &metrics, &token).unwrap();
    assert_eq!(first, models.path().join("synthetic/AAA-BBB_1h-4h_v1"));
    assert_eq!(
        entries(&first),
        [
            FEATURES_FILE,
            MANIFEST_FILE,
            METRICS_FILE,
            WEIGHTS_FILE,
            STRATEGY_FILE
        ]
    );

    let artifact = load_artifact(&first, Backend::Flex).unwrap();
    assert_eq!(artifact.strategy, strategy);
    assert_eq!(artifact.metrics, metrics);
    assert_eq!(artifact.features.symbols, data.symbols);
    assert_eq!(artifact.manifest.best_epoch, trained.report.best_epoch);
    assert_eq!(artifact.manifest.files.len(), 5);
    let predicted = artifact.predict(&data.test).unwrap();
    let again = Metrics::from_predictions(&data.test.labels, &predicted, &data.train.labels);
    assert_eq!(again, metrics);

    let second =
        save_artifact(models.path(), &strategy, &data, &trained, &metrics, &token).unwrap();
    assert_eq!(second.file_name().unwrap(), "AAA-BBB_1h-4h_v2");
    assert_eq!(
        entries(&models.path().join("synthetic")),
        ["AAA-BBB_1h-4h_v1", "AAA-BBB_1h-4h_v2"]
    );
}

#[test]
fn a_save_cancelled_before_the_rename_leaves_nothing() {
    let (strategy, data, trained, metrics) = trained(ModelKind::Mlp);
    let models = tempfile::tempdir().unwrap();
    let token = CancellationToken::new();
    let mut saw_complete_temp = false;
    let err = save_artifact_with(
        models.path(),
        &strategy,
        &data,
        &trained,
        &metrics,
        &token,
        &mut |temp| {
            // Everything is written, the manifest included, but only in the hidden folder.
            saw_complete_temp = temp.join(MANIFEST_FILE).is_file()
                && temp
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(".AAA-BBB_1h-4h_v1.tmp-");
            token.cancel(CancelReason::UserRequest(None));
            Ok(())
        },
    )
    .unwrap_err();
    assert!(saw_complete_temp);
    assert!(matches!(err, ArtifactError::Cancelled(_)));
    let cancelled = err.source().unwrap().downcast_ref::<Cancelled>().unwrap();
    assert_eq!(cancelled.stage, "saving model");
    assert_eq!(
        entries(&models.path().join("synthetic")),
        Vec::<String>::new()
    );
}

#[test]
fn a_failed_save_leaves_nothing_and_a_leftover_folder_is_not_an_artifact() {
    let (strategy, data, trained, metrics) = trained(ModelKind::Mlp);
    let models = tempfile::tempdir().unwrap();
    let token = CancellationToken::new();
    let err = save_artifact_with(
        models.path(),
        &strategy,
        &data,
        &trained,
        &metrics,
        &token,
        &mut |_| Err(io::Error::other("disk full")),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ArtifactError::Io {
                action: "prepare",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        entries(&models.path().join("synthetic")),
        Vec::<String>::new()
    );

    // A folder with the right name but no manifest: not loadable, and its
    // version is not reused.
    let leftover = models.path().join("synthetic/AAA-BBB_1h-4h_v1");
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join(WEIGHTS_FILE), b"partial").unwrap();
    assert!(matches!(
        load_artifact(&leftover, Backend::Flex).unwrap_err(),
        ArtifactError::Incomplete(path) if path == leftover
    ));
    let saved = save_artifact(models.path(), &strategy, &data, &trained, &metrics, &token).unwrap();
    assert_eq!(saved.file_name().unwrap(), "AAA-BBB_1h-4h_v2");

    // Already cancelled: nothing is even created.
    token.cancel(CancelReason::Shutdown);
    let err =
        save_artifact(models.path(), &strategy, &data, &trained, &metrics, &token).unwrap_err();
    assert!(matches!(err, ArtifactError::Cancelled(_)));
    assert_eq!(
        entries(&models.path().join("synthetic")),
        ["AAA-BBB_1h-4h_v1", "AAA-BBB_1h-4h_v2"]
    );
}

#[test]
fn strategy_names_that_are_not_one_folder_are_refused() {
    for name in ["", "..", ".hidden", "a/b", "a\\b", "tab\there"] {
        assert!(checked_name(name).is_err(), "{name:?}");
    }
    assert_eq!(
        checked_name("trend-follower v2").unwrap(),
        "trend-follower v2"
    );
}

#[test]
fn the_recorded_burn_version_is_the_one_the_workspace_uses() {
    let manifest = include_str!("../../../../Cargo.toml");
    assert!(
        manifest.contains(&format!("burn = {{ version = \"{BURN_VERSION}\"")),
        "update BURN_VERSION to the workspace's burn version"
    );
}

/// Fills `pending` with a copy of the files of `artifact`.
fn copy_files(artifact: &Path, pending: &PendingArtifact, with_manifest: bool) {
    for entry in fs::read_dir(artifact).unwrap() {
        let entry = entry.unwrap();
        if with_manifest || entry.file_name() != MANIFEST_FILE {
            fs::copy(entry.path(), pending.path().join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn a_received_artifact_is_installed_as_the_next_version_and_loads() {
    let (strategy, data, trained, metrics) = trained(ModelKind::Mlp);
    let elsewhere = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let token = CancellationToken::new();
    let source = save_artifact(
        elsewhere.path(),
        &strategy,
        &data,
        &trained,
        &metrics,
        &token,
    )
    .unwrap();
    save_artifact(models.path(), &strategy, &data, &trained, &metrics, &token).unwrap();

    let pending = PendingArtifact::create(models.path(), &strategy).unwrap();
    assert!(pending.path().starts_with(models.path().join("synthetic")));
    copy_files(&source, &pending, true);
    let installed = pending.commit(&token).unwrap();

    assert_eq!(installed, models.path().join("synthetic/AAA-BBB_1h-4h_v2"));
    assert_eq!(
        entries(&models.path().join("synthetic")),
        ["AAA-BBB_1h-4h_v1", "AAA-BBB_1h-4h_v2"]
    );
    let artifact = load_artifact(&installed, Backend::Flex).unwrap();
    assert_eq!(artifact.metrics, metrics);
}

#[test]
fn a_pending_artifact_dropped_or_without_manifest_or_cancelled_leaves_nothing() {
    let (strategy, data, trained, metrics) = trained(ModelKind::Mlp);
    let elsewhere = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let token = CancellationToken::new();
    let source = save_artifact(
        elsewhere.path(),
        &strategy,
        &data,
        &trained,
        &metrics,
        &token,
    )
    .unwrap();
    let folder = models.path().join("synthetic");

    let dropped = PendingArtifact::create(models.path(), &strategy).unwrap();
    copy_files(&source, &dropped, true);
    drop(dropped);
    assert!(entries(&folder).is_empty());

    let incomplete = PendingArtifact::create(models.path(), &strategy).unwrap();
    copy_files(&source, &incomplete, false);
    let err = incomplete.commit(&token).unwrap_err();
    assert!(matches!(err, ArtifactError::Incomplete(_)), "{err:?}");
    assert!(entries(&folder).is_empty());

    let cancelled = PendingArtifact::create(models.path(), &strategy).unwrap();
    copy_files(&source, &cancelled, true);
    token.cancel(CancelReason::UserRequest(None));
    let err = cancelled.commit(&token).unwrap_err();
    assert!(
        err.source().is_some_and(|source| source.is::<Cancelled>()),
        "{err:?}"
    );
    assert!(entries(&folder).is_empty());
}
