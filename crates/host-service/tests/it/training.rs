//! `TrainingHost`: sessions from start to every kind of end.

use std::collections::BTreeMap;

use local_trainer::{MANIFEST_FILE, TrainingSummary};
use rpc::proto::{self, cancel_reason::Kind, training_event::Event};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_completes_and_its_artifact_can_be_fetched_manifest_last() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let (id, mut stream) = start(&mut client, start_request(&strategy(), 1)).await;
    // A session is an operation of the host.
    assert!(id.starts_with("op_training_"), "{id}");

    let mut messages = Vec::new();
    let mut checkpoints = Vec::new();
    let summary = loop {
        match next_event(&mut stream).await {
            Event::Progress(progress) => messages.push(progress.message),
            Event::CheckpointSaved(saved) => checkpoints.push(saved.epoch),
            Event::Completed(completed) => {
                break TrainingSummary::try_from(completed.summary.unwrap()).unwrap();
            }
            other => panic!("unexpected event {other:?}"),
        }
    };
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Training MLP model on EURUSD [1h] [epoch 1/1]")),
        "{messages:?}"
    );
    assert_eq!(summary.report.epochs_run, 1);
    assert!(summary.model_path.starts_with(host.models.path()));
    // The epoch's end saved one; completing removed it.
    assert_eq!(checkpoints.first(), Some(&1), "{checkpoints:?}");
    let gone = client
        .fetch_checkpoint(proto::FetchCheckpointRequest {
            session_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::FailedPrecondition);
    assert!(gone.message().contains("it completed"), "{gone:?}");

    let listed = client
        .list_sessions(proto::ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session_id, id);
    assert_eq!(listed[0].status(), proto::SessionStatus::Completed);
    assert_eq!(listed[0].strategy, "eurusd_mlp");
    assert!(listed[0].finished_at.is_some());

    let mut chunks = client
        .fetch_artifact(proto::FetchArtifactRequest {
            session_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut order = Vec::new();
    while let Some(chunk) = within(Box::pin(chunks.next())).await {
        let chunk = chunk.unwrap();
        let data = files.entry(chunk.file.clone()).or_default();
        assert_eq!(chunk.offset, data.len() as u64, "{}", chunk.file);
        data.extend_from_slice(&chunk.data);
        if chunk.last {
            order.push(chunk.file);
        }
    }
    assert_eq!(order.last().map(String::as_str), Some(MANIFEST_FILE));
    let on_disk: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&summary.model_path)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().into_string().unwrap(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    assert_eq!(files, on_disk);
    assert_eq!(order.len(), on_disk.len(), "each file ends once: {order:?}");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_that_cannot_load_its_data_fails_with_the_error_chain() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let mut strategy = strategy();
    strategy.training_data.symbols = vec!["NODATA".parse().unwrap()];
    let (id, mut stream) = start(&mut client, start_request(&strategy, 1)).await;
    let Event::Failed(failed) = final_event(&mut stream).await else {
        panic!("not failed");
    };
    assert!(
        failed
            .message
            .starts_with("loading data: no data for NODATA 1h"),
        "{}",
        failed.message
    );
    let session = session(&mut client, &id).await;
    assert_eq!(session.status(), proto::SessionStatus::Failed);
    assert_eq!(session.error.as_deref(), Some(failed.message.as_str()));

    let artifact = client
        .fetch_artifact(proto::FetchArtifactRequest { session_id: id })
        .await
        .unwrap_err();
    assert_eq!(artifact.code(), Code::FailedPrecondition);
    assert!(artifact.message().contains("failed"), "{artifact:?}");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_training_mid_training_ends_the_stream_cancelled() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let (id, mut stream) = start(&mut client, long_request()).await;
    until_training(&mut stream).await;

    let answer = cancel(&mut client, &id, "enough").await;
    // The host waits for the trainer to stop before it answers.
    assert_eq!(answer.status(), proto::SessionStatus::Cancelled);
    assert_eq!(answer.cancel_reason, Some(user_request("enough")));

    let Event::Cancelled(cancelled) = final_event(&mut stream).await else {
        panic!("not cancelled");
    };
    assert_eq!(cancelled.reason, Some(user_request("enough")));
    assert!(!cancelled.stage.is_empty());

    let listed = client
        .list_sessions(proto::ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(listed[0].session_id, id);
    assert_eq!(listed[0].status(), proto::SessionStatus::Cancelled);

    // Cancelling a finished session answers it unchanged.
    let again = cancel(&mut client, &id, "again").await;
    assert_eq!(again, listed[0]);
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_session_announces_its_checkpoints_and_sends_the_last_one_whole() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let (id, mut stream) = start(&mut client, long_request()).await;
    let fetch = |session_id: &str| proto::FetchCheckpointRequest {
        session_id: session_id.to_owned(),
    };
    // The first announced: the end of epoch 1, or a later one when the
    // host's watch coalesced snapshots on a busy machine.
    let first = loop {
        if let Event::CheckpointSaved(saved) = next_event(&mut stream).await {
            break saved;
        }
    };
    assert!(first.epoch >= 1 && first.batch > 0, "{first:?}");
    cancel(&mut client, &id, "enough").await;
    // Stopping saves one more, announced before the end.
    let mut after_cancel = None;
    let end = loop {
        match next_event(&mut stream).await {
            Event::CheckpointSaved(saved) => after_cancel = Some(saved),
            Event::Progress(_) => {}
            end => break end,
        }
    };
    assert!(matches!(end, Event::Cancelled(_)), "{end:?}");
    let last = after_cancel.expect("no checkpoint announced after the cancel");

    let mut chunks = client
        .fetch_checkpoint(fetch(&id))
        .await
        .unwrap()
        .into_inner();
    let mut content = Vec::new();
    let mut which = None;
    while let Some(chunk) = within(Box::pin(chunks.next())).await {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.offset, content.len() as u64);
        if chunk.offset == 0 {
            which = chunk.checkpoint;
        }
        content.extend_from_slice(&chunk.data);
    }
    assert_eq!(which, Some(last));
    assert_eq!(content.len() as u64, last.bytes);
    let on_disk = host
        .models
        .path()
        .join(".checkpoints")
        .join(format!("{id}.ckpt"));
    assert_eq!(content, std::fs::read(on_disk).unwrap());

    let unknown = client
        .fetch_checkpoint(fetch("op_training_20240101_000000_00000000"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    host.stop().await.unwrap();
}

fn upload_chunk(offset: usize, data: &[u8], last: bool) -> proto::UploadCheckpointChunk {
    proto::UploadCheckpointChunk {
        offset: offset as u64,
        data: data.to_vec(),
        last,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_continues_from_an_uploaded_checkpoint_and_removes_it_when_it_completes() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let checkpoints = host.models.path().join(".checkpoints");
    // A checkpoint of the end of epoch 1, as a stopped session left it.
    let (stopped, mut stream) = start(&mut client, start_request(&strategy(), 2)).await;
    while !matches!(next_event(&mut stream).await, Event::CheckpointSaved(_)) {}
    cancel(&mut client, &stopped, "enough").await;
    assert!(matches!(
        final_event(&mut stream).await,
        Event::Cancelled(_)
    ));
    let content = std::fs::read(checkpoints.join(format!("{stopped}.ckpt"))).unwrap();

    let half = content.len() / 2;
    let chunks = vec![
        upload_chunk(0, &content[..half], false),
        upload_chunk(half, &content[half..], true),
    ];
    let uploaded = client
        .upload_checkpoint(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(uploaded.bytes, content.len() as u64);
    let path = checkpoints.join(&uploaded.name);
    assert_eq!(std::fs::read(&path).unwrap(), content);

    let mut resumed = start_request(&strategy(), 2);
    resumed.resume_checkpoint = Some(uploaded.name.clone());
    let (_, mut stream) = start(&mut client, resumed).await;
    // It goes on from epoch 1's end: epoch 1 is never trained again.
    let end = loop {
        match next_event(&mut stream).await {
            Event::Progress(progress) => {
                if let Some(proto::progress::Context::Training(context)) = progress.context
                    && let Some(epoch) = context.epoch
                {
                    assert_eq!(epoch.current, 2, "{epoch:?}");
                }
            }
            Event::CheckpointSaved(_) => {}
            end => break end,
        }
    };
    assert!(matches!(end, Event::Completed(_)), "{end:?}");
    assert!(
        !path.exists(),
        "the upload outlived the training it continued"
    );

    // Used once: the name now names nothing.
    let mut again = start_request(&strategy(), 2);
    again.resume_checkpoint = Some(uploaded.name);
    let error = client.start_training(again).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("does not exist"), "{error:?}");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_upload_is_refused_and_leaves_nothing_in_the_checkpoints_folder() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    for (chunks, why) in [
        (
            vec![upload_chunk(0, b"abc", false), upload_chunk(2, b"d", true)],
            "offset 2 after 3 bytes",
        ),
        (
            vec![upload_chunk(0, b"abc", false)],
            "without a chunk marked last",
        ),
    ] {
        let error = client
            .upload_checkpoint(tokio_stream::iter(chunks))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        assert!(error.message().contains(why), "{error:?}");
    }
    let checkpoints = host.models.path().join(".checkpoints");
    let left: Vec<_> = std::fs::read_dir(&checkpoints)
        .map(|entries| entries.map(|entry| entry.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_cancels_the_session() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let (id, mut stream) = start(&mut client, long_request()).await;
    until_training(&mut stream).await;
    drop(stream);

    let session = until_finished(&mut client, &id).await;
    assert_eq!(session.status(), proto::SessionStatus::Cancelled);
    let reason = session.cancel_reason.unwrap();
    assert_eq!(reason.kind(), Kind::UserRequest);
    assert_eq!(reason.note.as_deref(), Some("the caller went away"));
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_slot_later_sessions_wait_in_line() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let (first, mut first_stream) = start(&mut client, long_request()).await;
    until_training(&mut first_stream).await;

    let (second, mut second_stream) = start(&mut client, long_request()).await;
    let Event::Progress(waiting) = next_event(&mut second_stream).await else {
        panic!("no waiting progress");
    };
    assert_eq!(waiting.message, "waiting for a free slot");
    assert_eq!(
        session(&mut client, &second).await.status(),
        proto::SessionStatus::Waiting
    );

    // A third waits behind the second; cancelled while waiting, it never trains.
    let (third, mut third_stream) = start(&mut client, long_request()).await;
    let Event::Progress(waiting) = next_event(&mut third_stream).await else {
        panic!("no waiting progress");
    };
    assert_eq!(waiting.message, "waiting for a free slot");
    let listed: Vec<String> = client
        .list_sessions(proto::ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .sessions
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(listed, [third.clone(), second.clone(), first.clone()]);
    let answer = cancel(&mut client, &third, "not now").await;
    assert_eq!(answer.status(), proto::SessionStatus::Cancelled);
    let Event::Cancelled(cancelled) = final_event(&mut third_stream).await else {
        panic!("not cancelled");
    };
    assert_eq!(cancelled.stage, "waiting for a training slot");

    // The first one's end frees the slot for the second.
    cancel(&mut client, &first, "make room").await;
    until_training(&mut second_stream).await;
    assert_eq!(
        session(&mut client, &second).await.status(),
        proto::SessionStatus::Running
    );
    cancel(&mut client, &second, "done").await;
    assert!(matches!(
        final_event(&mut second_stream).await,
        Event::Cancelled(_)
    ));
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_running_and_waiting_sessions_then_stops() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let (_, mut running) = start(&mut client, long_request()).await;
    until_training(&mut running).await;
    let (_, mut waiting) = start(&mut client, long_request()).await;

    let stopped = tokio::spawn(host.stop());
    for stream in [&mut running, &mut waiting] {
        let Event::Cancelled(cancelled) = final_event(stream).await else {
            panic!("not cancelled");
        };
        assert_eq!(cancelled.reason.unwrap().kind(), Kind::Shutdown);
    }
    within(stopped).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sessions_are_not_found() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let id = "sess_nothere".to_owned();
    let errors = [
        client
            .get_session(proto::GetSessionRequest {
                session_id: id.clone(),
            })
            .await
            .unwrap_err(),
        client
            .cancel_training(proto::CancelTrainingRequest {
                session_id: id.clone(),
                reason: None,
            })
            .await
            .unwrap_err(),
        client
            .fetch_artifact(proto::FetchArtifactRequest {
                session_id: id.clone(),
            })
            .await
            .unwrap_err(),
    ];
    for error in errors {
        assert_eq!(error.code(), Code::NotFound, "{error:?}");
        assert!(error.message().contains(&id), "{error:?}");
    }
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_request_is_refused_naming_the_field() {
    let host = TestHost::start().await;
    let mut client = host.training().await;
    let invalid = |request: proto::StartTrainingRequest| {
        let mut client = client.clone();
        async move {
            let error = client.start_training(request).await.unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
            error.message().to_owned()
        }
    };
    let mut bad_json = start_request(&strategy(), 1);
    bad_json.strategy_json = "{\"name\": 3}".to_owned();
    assert!(invalid(bad_json).await.contains("strategy_json"));

    let mut bad_backend = start_request(&strategy(), 1);
    bad_backend.options.as_mut().unwrap().backend = "gpu".to_owned();
    let message = invalid(bad_backend).await;
    assert!(
        message.contains("backend") && message.contains("gpu"),
        "{message}"
    );

    let no_epochs = start_request(&strategy(), 0);
    assert!(invalid(no_epochs).await.contains("epochs"));

    // A checkpoint to continue from is one file the host keeps, named
    // plainly; nothing is said of what any file holds.
    std::fs::write(host.models.path().join("secret.txt"), "do not tell").unwrap();
    for name in ["../secret.txt", "/etc/passwd", "", "never-uploaded.ckpt"] {
        let mut resume = start_request(&strategy(), 1);
        resume.resume_checkpoint = Some(name.to_owned());
        let message = invalid(resume).await;
        assert!(
            message.contains("StartTrainingRequest.resume_checkpoint")
                && !message.contains("do not tell"),
            "{name:?}: {message}"
        );
    }

    let listed = client
        .list_sessions(proto::ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.sessions.is_empty(),
        "no session for a refused request"
    );
    host.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_a_token_refuses_callers_without_it() {
    let host = TestHost::start_with(root().join("data"), 1, Some("s3cret")).await;
    for token in [None, Some("wrong")] {
        let error = host
            .training_with(token)
            .await
            .list_sessions(proto::ListSessionsRequest {})
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "{token:?}");
        let chunks = tokio_stream::iter([proto::UploadCheckpointChunk {
            offset: 0,
            data: b"x".to_vec(),
            last: true,
        }]);
        let error = host
            .training_with(token)
            .await
            .upload_checkpoint(chunks)
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "{token:?}");
        assert!(!host.models.path().join(".checkpoints").exists());
        let error = host
            .data_with(token)
            .await
            .list_series(proto::ListSeriesRequest {})
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "{token:?}");
    }
    host.training_with(Some("s3cret"))
        .await
        .list_sessions(proto::ListSessionsRequest {})
        .await
        .unwrap();

    // Health stays open, so probes need no secret.
    let mut health = tonic_health::pb::health_client::HealthClient::new(host.channel().await);
    for service in ["trdr.v1.TrainingHost", "trdr.v1.DataHost"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            status.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    }
    host.stop().await.unwrap();
}
