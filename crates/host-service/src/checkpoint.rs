//! Checkpoints travelling to and from the host's checkpoints folder.
//! `FetchCheckpoint`: the checkpoint file a session last recorded, in
//! chunks; the host opens only the path in its own session record, and
//! only inside its checkpoints folder. `UploadCheckpoint`: a checkpoint
//! saved elsewhere, written there under a name the host chooses, which a
//! `StartTraining` then names to continue from it ([`uploaded`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use orchestrator_core::{Checkpoint, OperationId};
use rpc::CheckpointName;
use rpc::proto::{
    CheckpointChunk, CheckpointSaved, UploadCheckpointChunk, UploadCheckpointResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use crate::artifact::{READ_AHEAD, on_blocking_thread, send_chunks};

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
    let file = on_blocking_thread("checkpoint", session.as_str(), &path, open_regular).await?;
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

/// Writes the checkpoint arriving in `chunks` into `checkpoints_dir`
/// (created if missing) as `upload-{random}.ckpt`, atomically: it lands
/// whole under that name (hidden as `.upload-….part` while it arrives) or
/// not at all. Chunks must start at offset 0 and each continue where the
/// last ended, the last marked and nothing after it, at most `limit` bytes
/// in all; anything else is `INVALID_ARGUMENT` and leaves nothing behind.
pub(crate) async fn receive(
    mut chunks: impl Stream<Item = Result<UploadCheckpointChunk, Status>> + Unpin,
    checkpoints_dir: &Path,
    limit: u64,
) -> Result<UploadCheckpointResponse, Status> {
    let name = format!("upload-{:016x}.ckpt", fastrand::u64(..));
    let path = checkpoints_dir.join(&name);
    let partial = checkpoints_dir.join(format!(".{name}.part"));
    let (sender, receiver) = mpsc::channel(READ_AHEAD);
    let writer = {
        let (dir, path, partial) = (checkpoints_dir.to_owned(), path.clone(), partial.clone());
        tokio::task::spawn_blocking(move || write_upload(&dir, &partial, &path, receiver))
    };
    let invalid =
        |message: String| Status::invalid_argument(format!("UploadCheckpoint: {message}"));
    let mut received: u64 = 0;
    let arrived = loop {
        let chunk = match chunks.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(status)) => break Err(status),
            None => {
                break Err(invalid(format!(
                    "the upload ended after {received} bytes without a chunk marked last"
                )));
            }
        };
        if chunk.offset != received {
            break Err(invalid(format!(
                "a chunk at offset {} after {received} bytes",
                chunk.offset
            )));
        }
        let len = chunk.data.len() as u64;
        if received + len > limit {
            break Err(invalid(format!(
                "the checkpoint is larger than {limit} bytes, the most this host accepts"
            )));
        }
        received += len;
        if sender.send(Upload::Data(chunk.data)).await.is_err() {
            // The writer stopped on an error, which it answers below.
            break Ok(());
        }
        if chunk.last {
            break match chunks.next().await {
                None => Ok(()),
                Some(Ok(_)) => Err(invalid("a chunk after the one marked last".to_owned())),
                Some(Err(status)) => Err(status),
            };
        }
    };
    if arrived.is_ok() {
        // Closed already if the writer stopped.
        let _ = sender.send(Upload::Commit).await;
    }
    drop(sender);
    let written = match writer.await {
        Ok(written) => written,
        Err(err) => {
            return Err(Status::internal(format!(
                "writing an upload stopped: {err}"
            )));
        }
    };
    arrived?;
    let bytes = written.map_err(|err| {
        Status::internal(format!(
            "cannot write an uploaded checkpoint to {}: {err}",
            path.display()
        ))
    })?;
    tracing::info!(name, bytes, "checkpoint uploaded");
    Ok(UploadCheckpointResponse { name, bytes })
}

/// What the receiver of an upload hands its writer.
enum Upload {
    Data(Vec<u8>),
    /// Every chunk arrived: the file is whole.
    Commit,
}

/// Writes the uploaded chunks to `partial` and renames it to `path` on
/// [`Upload::Commit`]; removes it otherwise. Returns the bytes written.
fn write_upload(
    dir: &Path,
    partial: &Path,
    path: &Path,
    mut receiver: mpsc::Receiver<Upload>,
) -> io::Result<u64> {
    fs::create_dir_all(dir)?;
    let mut file = File::create_new(partial)?;
    let written = (|| {
        let mut written = 0;
        while let Some(upload) = receiver.blocking_recv() {
            match upload {
                Upload::Data(data) => {
                    file.write_all(&data)?;
                    written += data.len() as u64;
                }
                Upload::Commit => {
                    file.sync_all()?;
                    fs::rename(partial, path)?;
                    File::open(dir)?.sync_all()?;
                    return Ok(Some(written));
                }
            }
        }
        Ok(None)
    })();
    match written {
        Ok(Some(written)) => Ok(written),
        // The upload was refused or went away: its part is worth nothing.
        Ok(None) => {
            fs::remove_file(partial)?;
            Ok(0)
        }
        Err(err) => {
            // Best effort: the error that matters is the write's.
            let _ = fs::remove_file(partial);
            Err(err)
        }
    }
}

/// The path of the checkpoint `name` for a session to continue from: a
/// regular file directly in `checkpoints_dir` (one an upload left there).
/// Anything else is `INVALID_ARGUMENT` naming the field; what a file
/// holds is never said.
pub(crate) async fn uploaded(
    name: &CheckpointName,
    checkpoints_dir: &Path,
) -> Result<PathBuf, Status> {
    let path = checkpoints_dir.join(name.as_str());
    let checked = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || path.symlink_metadata()).await
    };
    let why = match checked {
        Ok(Ok(metadata)) if metadata.is_file() && is_directly_inside(&path, checkpoints_dir) => {
            return Ok(path);
        }
        Ok(Ok(_)) => "is not a regular file".to_owned(),
        Ok(Err(err)) if err.kind() == io::ErrorKind::NotFound => {
            "does not exist (upload the checkpoint first; a completed training removes the one \
             it continued from)"
                .to_owned()
        }
        Ok(Err(err)) => format!("cannot be read: {}", err.kind()),
        Err(err) => format!("could not be checked: {err}"),
    };
    Err(Status::invalid_argument(format!(
        "invalid StartTrainingRequest.resume_checkpoint: {:?} in this host's checkpoints \
         folder {why}",
        name.as_str()
    )))
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

    fn chunk(offset: u64, data: &[u8], last: bool) -> Result<UploadCheckpointChunk, Status> {
        Ok(UploadCheckpointChunk {
            offset,
            data: data.to_vec(),
            last,
        })
    }

    /// The names of the files in `dir`, hidden ones included.
    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[tokio::test]
    async fn an_upload_lands_whole_under_a_name_the_host_chose() {
        let models = tempfile::tempdir().unwrap();
        let dir = checkpoints_dir(models.path());
        let chunks = tokio_stream::iter([
            chunk(0, b"trdr", false),
            chunk(4, b"", false),
            chunk(4, b" checkpoint", true),
        ]);
        let answer = receive(chunks, &dir, 1024).await.unwrap();

        assert_eq!(answer.bytes, 15);
        let name = CheckpointName::parse(&answer.name, "name").unwrap();
        assert!(
            name.as_str().starts_with("upload-") && name.as_str().ends_with(".ckpt"),
            "{name}"
        );
        assert_eq!(files_in(&dir), std::slice::from_ref(&answer.name));
        let path = uploaded(&name, &dir).await.unwrap();
        assert_eq!(path, dir.join(&answer.name));
        assert_eq!(fs::read(&path).unwrap(), b"trdr checkpoint");

        // A second upload never lands on the first.
        let again = receive(tokio_stream::iter([chunk(0, b"x", true)]), &dir, 1024)
            .await
            .unwrap();
        assert_ne!(again.name, answer.name);
        assert_eq!(fs::read(&path).unwrap(), b"trdr checkpoint");
    }

    #[tokio::test]
    async fn a_bad_upload_is_refused_saying_why_and_leaves_nothing() {
        let models = tempfile::tempdir().unwrap();
        let dir = checkpoints_dir(models.path());
        let cases = [
            (
                vec![chunk(1, b"x", true)],
                "a chunk at offset 1 after 0 bytes",
            ),
            (
                vec![chunk(0, b"abc", false), chunk(2, b"c", true)],
                "a chunk at offset 2 after 3 bytes",
            ),
            (
                vec![chunk(0, b"abc", false)],
                "the upload ended after 3 bytes without a chunk marked last",
            ),
            (vec![], "the upload ended after 0 bytes"),
            (
                vec![chunk(0, b"abc", true), chunk(3, b"d", true)],
                "a chunk after the one marked last",
            ),
            (
                vec![chunk(0, b"abcdefgh", false), chunk(8, b"ij", true)],
                "larger than 9 bytes",
            ),
            (
                vec![
                    chunk(0, b"abc", false),
                    Err(Status::cancelled("the caller went away")),
                ],
                "the caller went away",
            ),
        ];
        for (chunks, why) in cases {
            let refused = receive(tokio_stream::iter(chunks), &dir, 9)
                .await
                .unwrap_err();
            assert!(refused.message().contains(why), "{why}: {refused:?}");
            if !why.contains("went away") {
                assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
            }
            assert_eq!(files_in(&dir), Vec::<String>::new(), "{why}");
        }
    }

    #[tokio::test]
    async fn a_training_continues_only_from_a_regular_file_directly_in_the_folder() {
        let models = tempfile::tempdir().unwrap();
        let dir = checkpoints_dir(models.path());
        fs::create_dir(&dir).unwrap();
        let secret = models.path().join("secret.txt");
        fs::write(&secret, "do not tell").unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("link.ckpt")).unwrap();
        fs::create_dir(dir.join("folder.ckpt")).unwrap();

        for (name, why) in [
            ("link.ckpt", "is not a regular file"),
            ("folder.ckpt", "is not a regular file"),
            ("gone.ckpt", "does not exist"),
        ] {
            let name = CheckpointName::parse(name, "name").unwrap();
            let refused = uploaded(&name, &dir).await.unwrap_err();
            assert_eq!(refused.code(), tonic::Code::InvalidArgument);
            let message = refused.message();
            assert!(
                message.starts_with("invalid StartTrainingRequest.resume_checkpoint: ")
                    && message.contains(why)
                    && !message.contains("do not tell"),
                "{refused:?}"
            );
        }
    }
}
