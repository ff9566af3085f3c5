//! `FetchCheckpoint`: the checkpoint file a session last recorded, in
//! chunks. The host opens only the path in its own session record, and
//! only inside its checkpoints folder: no caller names a file.

use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};

use orchestrator_core::{Checkpoint, OperationId};
use rpc::proto::{CheckpointChunk, CheckpointSaved};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::artifact::{READ_AHEAD, send_chunks};

/// Streams the checkpoint `saved` of `session`, which must be a regular
/// file directly inside `checkpoints_dir`. The first chunk says which
/// checkpoint it is; the file may be a newer one the training saved since
/// (each save replaces it whole, and the file opened stays whole).
pub(crate) async fn stream(
    session: &OperationId,
    saved: &Checkpoint,
    checkpoints_dir: &Path,
) -> Result<ReceiverStream<Result<CheckpointChunk, Status>>, Status> {
    let path = PathBuf::from(&saved.path);
    if !is_directly_inside(&path, checkpoints_dir) {
        // A record of the host's own training says this: not the caller's doing.
        return Err(Status::internal(format!(
            "the checkpoint of session {session} is recorded outside the host's checkpoints \
             folder; it is not sent"
        )));
    }
    let opened = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || open_regular(&path)).await
    };
    let file = match opened {
        Ok(Ok(file)) => file,
        Ok(Err(err)) if err.kind() == io::ErrorKind::NotFound => {
            return Err(Status::not_found(format!(
                "the checkpoint of session {session} ({}) no longer exists on the host",
                path.display()
            )));
        }
        Ok(Err(err)) => {
            return Err(Status::internal(format!(
                "cannot open the checkpoint of session {session} ({}): {err}",
                path.display()
            )));
        }
        Err(err) => {
            return Err(Status::internal(format!(
                "opening the checkpoint of session {session} stopped: {err}"
            )));
        }
    };
    let mut which = Some(CheckpointSaved::from(saved));
    let (sender, receiver) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let chunk = |offset, data, last| CheckpointChunk {
            checkpoint: which.take(),
            offset,
            data,
            last,
        };
        if let Err(err) = send_chunks(file, &sender, chunk) {
            let message = format!("cannot read {}: {err}", path.display());
            let _ = sender.blocking_send(Err(Status::internal(message)));
        }
    });
    Ok(ReceiverStream::new(receiver))
}

/// A plain name directly inside `dir`, nothing climbing out of it.
fn is_directly_inside(path: &Path, dir: &Path) -> bool {
    path.parent() == Some(dir)
        && matches!(path.components().next_back(), Some(Component::Normal(_)))
}

/// Opens `path` if it is a regular file; a link is refused, even to one.
fn open_regular(path: &Path) -> io::Result<File> {
    let not_regular = || io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
    if !path.symlink_metadata()?.is_file() {
        return Err(not_regular());
    }
    let file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use tokio_stream::StreamExt;
    use training_manager::checkpoints_dir;

    use super::*;
    use crate::artifact::CHUNK_BYTES;

    fn saved(path: &Path) -> Checkpoint {
        Checkpoint {
            path: path.to_string_lossy().into_owned(),
            bytes: 7,
            epoch: 2,
            batch: 30,
            saved_at: Utc::now(),
        }
    }

    fn session() -> OperationId {
        orchestrator_core::Operation::new(
            orchestrator_core::OperationKind::Training,
            serde_json::json!({}),
            Utc::now(),
        )
        .id
    }

    #[tokio::test]
    async fn the_recorded_checkpoint_arrives_in_order_saying_which_it_is() {
        let models = tempfile::tempdir().unwrap();
        let dir = checkpoints_dir(models.path());
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("op.ckpt");
        let content: Vec<u8> = (0..CHUNK_BYTES + 5).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &content).unwrap();

        let chunks: Vec<CheckpointChunk> = stream(&session(), &saved(&path), &dir)
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        let shape: Vec<_> = chunks
            .iter()
            .map(|c| (c.checkpoint, c.offset, c.data.len(), c.last))
            .collect();
        let which = Some(CheckpointSaved {
            epoch: 2,
            batch: 30,
            bytes: 7,
        });
        assert_eq!(
            shape,
            [
                (which, 0, CHUNK_BYTES, false),
                (None, CHUNK_BYTES as u64, 5, true)
            ]
        );
        let rebuilt: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(rebuilt, content);
    }

    #[tokio::test]
    async fn only_a_regular_file_directly_in_the_checkpoints_folder_is_sent() {
        let models = tempfile::tempdir().unwrap();
        let dir = checkpoints_dir(models.path());
        std::fs::create_dir(&dir).unwrap();
        let secret = models.path().join("secret.txt");
        std::fs::write(&secret, "do not send").unwrap();
        let link = dir.join("link.ckpt");
        std::os::unix::fs::symlink(&secret, &link).unwrap();

        for outside in [secret.clone(), dir.join("..").join("secret.txt")] {
            let refused = stream(&session(), &saved(&outside), &dir)
                .await
                .unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Internal, "{outside:?}");
            assert!(refused.message().contains("outside"), "{refused:?}");
        }
        let refused = stream(&session(), &saved(&link), &dir).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Internal);
        assert!(
            refused.message().contains("not a regular file")
                && !refused.message().contains("do not send"),
            "{refused:?}"
        );

        let gone = stream(&session(), &saved(&dir.join("gone.ckpt")), &dir)
            .await
            .unwrap_err();
        assert_eq!(gone.code(), tonic::Code::NotFound);
    }
}
