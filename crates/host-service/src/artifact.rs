//! `FetchArtifact`: the files of a completed session's artifact folder in
//! chunks, `manifest.json` last, because its presence marks a complete
//! artifact (a receiver that stops early never has one that looks whole).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use local_trainer::MANIFEST_FILE;
use rpc::proto::ArtifactChunk;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// The most bytes one chunk carries.
pub(crate) const CHUNK_BYTES: usize = 1024 * 1024;

/// Chunks read ahead of a slow receiver.
pub(crate) const READ_AHEAD: usize = 4;

/// Runs `open` on `path` (the `what` of `session`, e.g. its artifact) on a
/// blocking thread; a missing file is `NOT_FOUND`, any other failure
/// `INTERNAL`, each naming the session and the path.
pub(crate) async fn on_blocking_thread<T: Send + 'static>(
    what: &str,
    session: &str,
    path: &Path,
    open: fn(&Path) -> io::Result<T>,
) -> Result<T, Status> {
    let owned = path.to_owned();
    match tokio::task::spawn_blocking(move || open(&owned)).await {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(err)) if err.kind() == io::ErrorKind::NotFound => Err(Status::not_found(format!(
            "the {what} of session {session} ({}) no longer exists on the host",
            path.display()
        ))),
        Ok(Err(err)) => Err(Status::internal(format!(
            "cannot read the {what} of session {session} ({}): {err}",
            path.display()
        ))),
        Err(err) => Err(Status::internal(format!(
            "reading the {what} of session {session} stopped: {err}"
        ))),
    }
}

/// Streams the files of `dir`, the artifact of `session`.
pub(crate) async fn stream(
    session: &str,
    dir: PathBuf,
) -> Result<ReceiverStream<Result<ArtifactChunk, Status>>, Status> {
    let files = on_blocking_thread("artifact", session, &dir, artifact_files).await?;
    if files.last().is_none_or(|(name, _)| name != MANIFEST_FILE) {
        return Err(Status::failed_precondition(format!(
            "the artifact of session {session} ({}) has no {MANIFEST_FILE}: it is incomplete",
            dir.display()
        )));
    }
    let (sender, receiver) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        for (name, path) in files {
            let chunk = |offset, data, last| ArtifactChunk {
                file: name.clone(),
                offset,
                data,
                last,
            };
            match File::open(&path).and_then(|file| send_chunks(file, &sender, chunk)) {
                Ok(true) => {}
                // The receiver went away: nobody to send to.
                Ok(false) => return,
                Err(err) => {
                    let message = format!("cannot read {}: {err}", path.display());
                    let _ = sender.blocking_send(Err(Status::internal(message)));
                    return;
                }
            }
        }
    });
    Ok(ReceiverStream::new(receiver))
}

/// The regular files of `dir` by name, with the manifest moved to the end.
fn artifact_files(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        // Names that are not UTF-8 cannot travel in the chunk's `file` field;
        // the trainer never writes such names.
        if entry.file_type()?.is_file()
            && let Ok(name) = entry.file_name().into_string()
        {
            files.push((name, entry.path()));
        }
    }
    files.sort_by(|(a, _), (b, _)| (a == MANIFEST_FILE, a).cmp(&(b == MANIFEST_FILE, b)));
    Ok(files)
}

/// Sends `file` in chunks made by `chunk(offset, data, last)`, the last
/// one marked; `false` if the receiver went away. An empty file is one
/// empty chunk.
pub(crate) fn send_chunks<T>(
    mut file: File,
    sender: &mpsc::Sender<Result<T, Status>>,
    mut chunk: impl FnMut(u64, Vec<u8>, bool) -> T,
) -> io::Result<bool> {
    let mut offset = 0;
    let mut current = read_chunk(&mut file)?;
    loop {
        // Read one chunk ahead to know whether this one is the last.
        let next = if current.len() < CHUNK_BYTES {
            Vec::new()
        } else {
            read_chunk(&mut file)?
        };
        let last = next.is_empty();
        let len = current.len() as u64;
        if sender
            .blocking_send(Ok(chunk(offset, current, last)))
            .is_err()
        {
            return Ok(false);
        }
        if last {
            return Ok(true);
        }
        offset += len;
        current = next;
    }
}

fn read_chunk(file: &mut File) -> io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(CHUNK_BYTES);
    file.by_ref()
        .take(CHUNK_BYTES as u64)
        .read_to_end(&mut chunk)?;
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn files_arrive_in_chunks_in_order_with_the_manifest_last() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..CHUNK_BYTES * 2 + 10).map(|i| (i % 251) as u8).collect();
        fs::write(dir.path().join("model.bpk"), &big).unwrap();
        fs::write(dir.path().join(MANIFEST_FILE), b"{}").unwrap();
        fs::write(dir.path().join("zz.json"), b"").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();

        let chunks: Vec<ArtifactChunk> = stream("sess_1", dir.path().to_owned())
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        let shape: Vec<_> = chunks
            .iter()
            .map(|c| (c.file.as_str(), c.offset, c.data.len(), c.last))
            .collect();
        let chunk = CHUNK_BYTES as u64;
        assert_eq!(
            shape,
            [
                ("model.bpk", 0, CHUNK_BYTES, false),
                ("model.bpk", chunk, CHUNK_BYTES, false),
                ("model.bpk", 2 * chunk, 10, true),
                ("zz.json", 0, 0, true),
                (MANIFEST_FILE, 0, 2, true),
            ]
        );
        let rebuilt: Vec<u8> = chunks[..3].iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(rebuilt, big);
    }

    #[tokio::test]
    async fn a_missing_or_incomplete_artifact_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("model.bpk"), b"x").unwrap();
        let incomplete = stream("sess_1", dir.path().to_owned()).await.unwrap_err();
        assert_eq!(incomplete.code(), tonic::Code::FailedPrecondition);
        assert!(
            incomplete.message().contains("no manifest.json"),
            "{incomplete:?}"
        );

        let gone = stream("sess_2", dir.path().join("gone")).await.unwrap_err();
        assert_eq!(gone.code(), tonic::Code::NotFound);
        assert!(gone.message().contains("sess_2"), "{gone:?}");
    }
}
