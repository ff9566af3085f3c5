//! Cancel against complete, thousands of times: every operation ends exactly
//! one way, and what is on disk agrees with it.
//!
//! Each work checks its token a few times, then installs its "model" by a
//! rename through [`CancellationToken::commit`], as a trainer does. A
//! canceller waits until the work reaches a random point (before a check,
//! after the last check, inside the commit, after the work returned) and
//! cancels there.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orchestrator_core::{
    CancelReason, CancellationToken, Cancelled, OperationKind, OperationStatus, ServiceOrchestrator,
};

use super::CountingManager;

const OPERATIONS: usize = 2000;
/// Operations in flight together.
const BATCH: usize = 40;
/// Token checks before the commit.
const CHECKS: usize = 4;
/// Where a work is: `0..CHECKS` before each check, then these.
const AFTER_LAST_CHECK: usize = CHECKS;
const COMMITTING: usize = CHECKS + 1;
const RETURNED: usize = CHECKS + 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_ends_one_way_and_the_disk_agrees() {
    let manager = CountingManager::new(None);
    let models = tempfile::tempdir().unwrap();
    let running_works = Arc::new(AtomicUsize::new(0));
    let mut rng = fastrand::Rng::with_seed(11);
    let mut ended = Vec::with_capacity(OPERATIONS);

    for batch in 0..OPERATIONS / BATCH {
        let mut cancellers = Vec::with_capacity(BATCH);
        for slot in 0..BATCH {
            let n = batch * BATCH + slot;
            let position = Arc::new(AtomicUsize::new(0));
            let id = manager
                .start_managed_operation(OperationKind::Training, serde_json::json!({ "n": n }), {
                    let (position, running, dir) = (
                        Arc::clone(&position),
                        Arc::clone(&running_works),
                        models.path().to_owned(),
                    );
                    move |context| async move {
                        tokio::task::spawn_blocking(move || {
                            running.fetch_add(1, Ordering::SeqCst);
                            let installed = train_and_install(&context.token, &position, &dir, n);
                            running.fetch_sub(1, Ordering::SeqCst);
                            position.store(RETURNED, Ordering::SeqCst);
                            installed.map(|path| path.display().to_string())
                        })
                        .await
                        .unwrap()
                    }
                })
                .unwrap();
            let cancel_at = rng.usize(0..=RETURNED);
            let operations = manager.operations().clone();
            let canceller_id = id.clone();
            cancellers.push(tokio::task::spawn_blocking(move || {
                while position.load(Ordering::SeqCst) < cancel_at {
                    std::thread::yield_now();
                }
                // Finished already is fine: the cancel came too late.
                let _ = operations.cancel(&canceller_id, CancelReason::UserRequest(None));
            }));
            ended.push((n, id));
        }
        for canceller in cancellers {
            canceller.await.unwrap();
            // A work that runs is always under a live operation.
            let active = manager.operations().active_count();
            let running = running_works.load(Ordering::SeqCst);
            assert!(
                running <= active,
                "{running} works run under {active} live operations"
            );
        }
        for (_, id) in &ended[batch * BATCH..] {
            manager.finished(id).await;
        }
    }
    assert_eq!(manager.operations().active_count(), 0);

    let mut seen = [0usize; 2];
    for (n, id) in ended {
        let operation = manager.operations().get(&id).unwrap();
        let model = model_path(models.path(), n);
        match operation.status {
            OperationStatus::Completed => {
                assert!(model.is_file(), "{id} completed without its model");
                assert_eq!(operation.result, Some(model.display().to_string().into()));
                seen[0] += 1;
            }
            OperationStatus::Cancelled => {
                assert!(
                    !model.exists(),
                    "{id} cancelled, yet its model was installed"
                );
                assert!(operation.result.is_none() && operation.cancel_requested());
                seen[1] += 1;
            }
            status => panic!("{id} ended {status}: {:?}", operation.error),
        }
        assert!(
            !temp_path(models.path(), n).exists(),
            "{id} left its temporary file"
        );
    }
    // Both outcomes happened, so the race was really run.
    assert!(
        seen.iter().all(|&count| count > 0),
        "completed, cancelled: {seen:?}"
    );
}

/// Checks the token `CHECKS` times, then renames a finished file into place.
fn train_and_install(
    token: &CancellationToken,
    position: &AtomicUsize,
    dir: &Path,
    n: usize,
) -> Result<PathBuf, Cancelled> {
    let temp = temp_path(dir, n);
    fs::write(&temp, b"weights").unwrap();
    let trained = (0..CHECKS).try_for_each(|check| {
        position.store(check, Ordering::SeqCst);
        token.check("training")
    });
    let installed = trained.and_then(|()| {
        position.store(AFTER_LAST_CHECK, Ordering::SeqCst);
        token.commit("installing the model", || {
            position.store(COMMITTING, Ordering::SeqCst);
            let model = model_path(dir, n);
            fs::rename(&temp, &model).unwrap();
            model
        })
    });
    if installed.is_err() {
        fs::remove_file(&temp).unwrap();
    }
    installed
}

fn model_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("model-{n}"))
}

fn temp_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!(".model-{n}.tmp"))
}
