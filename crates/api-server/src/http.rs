//! The dashboard of `trdr serve --http`: live pages for people and a JSON
//! API with Server-Sent Events for scripts, over the same
//! `OperationsService` the gRPC API serves.
//!
//! Pages are plain HTML, CSS and JavaScript compiled into the binary (no
//! build step, nothing fetched from elsewhere). With a token, every page,
//! API call and event stream needs it, as `Authorization: Bearer TOKEN` or
//! as the cookie the login form sets. Errors reuse the gRPC API's checks
//! and wording, each code mapped to its HTTP status (400 names the field,
//! 404 an unknown id, 409 an operation in the wrong state).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use orchestrator_core::{
    CancelReason, Checkpoint, ListFilter, Operation, OperationId, OperationKind, OperationStatus,
    OperationWatch, OperationsService,
};
use progress::{EpochPoint, ProgressContext, Step};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};
use training_manager::TrainingManager;

use rpc::auth::constant_time_eq;

use crate::service::{Gate, WATCH_INTERVAL, operation_status, parse_id, training_status};

/// The login cookie; it holds the token itself, HttpOnly and SameSite=Strict.
const COOKIE: &str = "trdr_token";
/// A page of the list when the query names no limit.
const DEFAULT_LIMIT: usize = 100;

/// What the dashboard's handlers share.
#[derive(Clone)]
pub(crate) struct Dashboard {
    operations: OperationsService,
    training: Arc<TrainingManager>,
    gate: Gate,
    token: Option<Arc<Token>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("auth", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// The token as a request carries it: the header's value and the cookie's.
struct Token {
    bearer: Vec<u8>,
    cookie: Vec<u8>,
}

impl Dashboard {
    /// `token`: what every request must carry; `None` lets everyone in.
    pub(crate) fn new(
        operations: OperationsService,
        training: Arc<TrainingManager>,
        gate: Gate,
        token: Option<&str>,
    ) -> Self {
        let token = token.filter(|token| !token.is_empty()).map(|token| {
            Arc::new(Token {
                bearer: format!("Bearer {token}").into_bytes(),
                // Percent-encoded: a token given by flag may hold `;` or spaces.
                cookie: form_urlencoded::byte_serialize(token.as_bytes())
                    .collect::<String>()
                    .into_bytes(),
            })
        });
        Self {
            operations,
            training,
            gate,
            token,
        }
    }

    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .any(|given| constant_time_eq(given.as_bytes(), &token.bearer));
        bearer
            || cookies(headers)
                .filter_map(|(name, value)| (name == COOKIE).then_some(value))
                .any(|given| constant_time_eq(given.as_bytes(), &token.cookie))
    }
}

/// The dashboard's routes; `/login` is the only one open without the token.
pub(crate) fn router(dashboard: Dashboard) -> Router {
    let guarded = Router::new()
        .route("/", get(list_page))
        .route("/operations/{id}", get(operation_page))
        .route("/api/operations", get(list_operations))
        .route("/api/operations/{id}", get(get_operation))
        .route("/api/operations/{id}/metrics", get(metrics))
        .route("/api/operations/{id}/chart.svg", get(chart))
        .route("/api/operations/{id}/events", get(events))
        .route("/api/operations/{id}/cancel", post(cancel))
        .route("/api/operations/{id}/resume", post(resume))
        .layer(middleware::from_fn_with_state(
            dashboard.clone(),
            require_token,
        ));
    Router::new()
        .route("/login", get(login_page).post(login))
        .merge(guarded)
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such page".to_owned()) })
        .with_state(dashboard)
}

async fn require_token(
    State(dashboard): State<Dashboard>,
    request: Request,
    next: Next,
) -> Response {
    if dashboard.admits(request.headers()) {
        return next.run(request).await;
    }
    let path = request.uri().path();
    if path.starts_with("/api/") {
        let mut refused = ApiError(
            StatusCode::UNAUTHORIZED,
            "this dashboard needs the server's auth token: send `Authorization: Bearer TOKEN`, \
             or log in at /login"
                .to_owned(),
        )
        .into_response();
        refused
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return refused;
    }
    let back = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    (StatusCode::UNAUTHORIZED, login_form(back, None)).into_response()
}

async fn login_page(RawQuery(query): RawQuery) -> Html<String> {
    let next = query_pairs(query.as_deref())
        .find_map(|(key, value)| (key == "next").then_some(value))
        .unwrap_or_default();
    login_form(&next, None)
}

/// Checks the token of the login form and keeps it in the cookie.
async fn login(State(dashboard): State<Dashboard>, form: String) -> Response {
    let mut token = String::new();
    let mut next = String::new();
    for (key, value) in form_urlencoded::parse(form.as_bytes()) {
        match &*key {
            "token" => token = value.into_owned(),
            "next" => next = value.into_owned(),
            _ => {}
        }
    }
    let target = local_path(&next);
    let Some(expected) = &dashboard.token else {
        return Redirect::to(target).into_response();
    };
    let given = form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>();
    if !constant_time_eq(given.as_bytes(), &expected.cookie) {
        return (
            StatusCode::UNAUTHORIZED,
            login_form(&next, Some("Wrong token.")),
        )
            .into_response();
    }
    let cookie = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
    let mut response = Redirect::to(target).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `next` when it is a path of this server, else `/`: the login form must
/// not send anyone elsewhere.
fn local_path(next: &str) -> &str {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\");
    if local { next } else { "/" }
}

async fn list_page() -> Html<String> {
    page(
        "Operations",
        include_str!("http/list.html"),
        include_str!("http/list.js"),
    )
}

async fn operation_page(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Result<Html<String>, (StatusCode, Html<String>)> {
    let known =
        parse_id(&id).and_then(|id| dashboard.operations.get(&id).map_err(operation_status));
    match known {
        Ok(operation) => Ok(page(
            operation.id.as_str(),
            include_str!("http/operation.html"),
            include_str!("http/operation.js"),
        )),
        // The page's status too: a script or a link checker sees it.
        Err(status) => Err((
            ApiError::from(status.clone()).0,
            page(
                "Not shown",
                &format!(
                    "<p class=\"error\">{}</p><p><a href=\"/\">All operations</a></p>",
                    escape(status.message())
                ),
                "",
            ),
        )),
    }
}

/// `GET /api/operations[?status=S[,S…]][&limit=N]`: newest first.
async fn list_operations(
    State(dashboard): State<Dashboard>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let filter = list_filter(query.as_deref())?;
    let page = dashboard
        .operations
        .list(&filter)
        .map_err(operation_status)?;
    let active = dashboard
        .operations
        .list(&ListFilter {
            active_only: true,
            limit: Some(0),
            ..ListFilter::default()
        })
        .map_err(operation_status)?
        .total;
    let now = Utc::now();
    Ok(json(&serde_json::json!({
        "operations": page
            .operations
            .iter()
            .map(|operation| OperationView::summary(operation, now))
            .collect::<Vec<_>>(),
        "total": page.total,
        "active": active,
    })))
}

/// The list's filter from its query string; an unknown parameter or
/// status is a 400 naming it.
fn list_filter(query: Option<&str>) -> Result<ListFilter, ApiError> {
    let mut filter = ListFilter {
        limit: Some(DEFAULT_LIMIT),
        ..ListFilter::default()
    };
    for (key, value) in query_pairs(query) {
        match &*key {
            "status" => {
                for name in value.split(',').filter(|name| !name.trim().is_empty()) {
                    let status = name.parse::<OperationStatus>().map_err(|error| {
                        ApiError(StatusCode::BAD_REQUEST, format!("status: {error}"))
                    })?;
                    filter.statuses.push(status);
                }
            }
            "limit" => {
                let limit = value.parse().map_err(|error| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        format!("limit: {error}: {value:?}"),
                    )
                })?;
                filter.limit = Some(limit);
            }
            other => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("{other}: unknown parameter; expected status or limit"),
                ));
            }
        }
    }
    Ok(filter)
}

async fn get_operation(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let operation = dashboard.get(&id)?;
    Ok(json(&OperationView::detail(&operation, Utc::now())))
}

async fn metrics(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let operation = dashboard.get(&id)?;
    Ok(json(&serde_json::json!({
        "id": operation.id,
        "epochs": operation.epochs,
    })))
}

async fn chart(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let operation = dashboard.get(&id)?;
    let svg = crate::chart::training_chart(&operation, &operation.epochs);
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

async fn cancel(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let operation = dashboard
        .operations
        .cancel(
            &id,
            CancelReason::UserRequest(Some("from the dashboard".to_owned())),
        )
        .map_err(operation_status)?;
    tracing::info!(operation = %id, "stop requested from the dashboard");
    Ok(json(&OperationView::detail(&operation, Utc::now())))
}

/// Continues a stopped training from its checkpoint; answers the new
/// operation, which the page then opens.
async fn resume(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let stopped = parse_id(&id)?;
    // A resume starts a training: the same gate as the gRPC API's.
    let id = dashboard
        .gate
        .admit(|| dashboard.training.resume(&stopped).map_err(training_status))?;
    tracing::info!(operation = %id, resumed_from = %stopped, "training resumed from the dashboard");
    let operation = dashboard.get(id.as_str())?;
    Ok((
        StatusCode::CREATED,
        json(&OperationView::detail(&operation, Utc::now())),
    )
        .into_response())
}

impl Dashboard {
    fn get(&self, id: &str) -> Result<Operation, ApiError> {
        Ok(self
            .operations
            .get(&parse_id(id)?)
            .map_err(operation_status)?)
    }
}

/// `GET /api/operations/{id}/events`: the operation's [`Feed`] as
/// Server-Sent Events `epoch`, `snapshot` and, last, `end`.
async fn events(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let watch = dashboard.operations.watch(&id).map_err(operation_status)?;
    let events = ReceiverStream::new(feed(watch)).map(|item| {
        let now = Utc::now();
        let event = match &item {
            Feed::Epoch(point) => Event::default()
                .event("epoch")
                .id(point.epoch.to_string())
                .data(to_json(point)),
            Feed::Snapshot(operation) => Event::default()
                .event("snapshot")
                .data(to_json(&OperationView::summary(operation, now))),
            Feed::End(operation) => Event::default()
                .event("end")
                .data(to_json(&OperationView::detail(operation, now))),
        };
        Ok::<_, Infallible>(event)
    });
    // The comments keep proxies from closing a quiet stream and let a
    // vanished client be noticed (its write fails).
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// What an operation's event stream says, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Feed {
    /// A finished epoch: every one from the first, each once.
    Epoch(EpochPoint),
    /// The operation as it stands (status, progress); sent without its
    /// epochs, which went out one by one.
    Snapshot(Operation),
    /// Its terminal state; the stream ends after it.
    End(Operation),
}

/// The operation `watch` follows as a feed: first every epoch finished so
/// far, then, at each snapshot, the epochs it adds and the snapshot
/// itself; `End` at its terminal state. The watch channel coalesces
/// snapshots, so each one's epochs are sent from the count already sent:
/// none is skipped even when snapshots are. Snapshots go out at most once
/// per [`WATCH_INTERVAL`], so a watcher costs the training as little as a
/// gRPC one.
pub(crate) fn feed(mut watch: OperationWatch) -> mpsc::Receiver<Feed> {
    // Room for a backlog of epochs without holding the watch task back.
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut epochs_sent = 0;
        loop {
            let snapshot = tokio::select! {
                snapshot = watch.next() => snapshot,
                // A client that went away should not keep a task waiting on
                // an operation that may run for hours.
                () = sender.closed() => return,
            };
            let Some(snapshot) = snapshot else { return };
            let new_epochs = snapshot.epochs.get(epochs_sent..).unwrap_or_default();
            for point in new_epochs {
                if sender.send(Feed::Epoch(point.clone())).await.is_err() {
                    return;
                }
            }
            epochs_sent = epochs_sent.max(snapshot.epochs.len());
            let terminal = snapshot.status.is_terminal();
            let item = if terminal {
                Feed::End(snapshot)
            } else {
                Feed::Snapshot(snapshot)
            };
            if sender.send(item).await.is_err() || terminal {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(WATCH_INTERVAL) => {}
                () = sender.closed() => return,
            }
        }
    });
    receiver
}

/// An operation as the JSON API and the pages read it: the figures a
/// page shows, worked out once here (elapsed, ETA, whether it can be
/// resumed) rather than in every script.
#[derive(Debug, Serialize)]
struct OperationView<'a> {
    id: &'a OperationId,
    kind: OperationKind,
    status: OperationStatus,
    /// Asked to stop and not stopped yet.
    stopping: bool,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    elapsed_seconds: Option<f64>,
    percentage: f64,
    message: &'a str,
    eta_seconds: Option<f64>,
    step: Option<Step>,
    context: &'a ProgressContext,
    epochs_run: usize,
    params: &'a serde_json::Value,
    /// Only in the detail: a training's summary is a few kilobytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a serde_json::Value>,
    error: Option<&'a str>,
    checkpoint: Option<&'a Checkpoint>,
    /// A stopped training with a checkpoint to continue from.
    resumable: bool,
}

impl<'a> OperationView<'a> {
    fn summary(operation: &'a Operation, now: DateTime<Utc>) -> Self {
        let running = !operation.status.is_terminal();
        Self {
            id: &operation.id,
            kind: operation.kind,
            status: operation.status,
            stopping: running && operation.cancel_requested(),
            created_at: operation.created_at,
            started_at: operation.started_at,
            finished_at: operation.finished_at,
            elapsed_seconds: operation.started_at.map(|started| {
                let end = operation.finished_at.unwrap_or(now);
                (end - started).as_seconds_f64().max(0.0)
            }),
            percentage: operation.progress.percentage,
            message: &operation.progress.message,
            eta_seconds: operation
                .progress
                .eta
                .filter(|_| running)
                .map(|eta| eta.as_secs_f64()),
            step: operation.progress.step,
            context: &operation.progress.context,
            epochs_run: operation.epochs.len(),
            params: &operation.params,
            result: None,
            error: operation.error.as_deref(),
            checkpoint: operation.checkpoint.as_ref(),
            resumable: operation.kind == OperationKind::Training
                && matches!(
                    operation.status,
                    OperationStatus::Cancelled | OperationStatus::Failed
                )
                && operation.checkpoint.is_some(),
        }
    }

    fn detail(operation: &'a Operation, now: DateTime<Utc>) -> Self {
        Self {
            result: operation.result.as_ref(),
            ..Self::summary(operation, now)
        }
    }
}

/// An API error: its status and a JSON body `{"error": message}`.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        let code = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(code, status.message().to_owned())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json(&serde_json::json!({ "error": self.1 }));
        *response.status_mut() = self.0;
        response
    }
}

fn json(value: &impl Serialize) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], to_json(value)).into_response()
}

fn to_json(value: &impl Serialize) -> String {
    // Our own plain types: serialising them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// A page: the shared head and style, `body`, and its script inline.
fn page(title: &str, body: &str, script: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · trdr</title><style>{}</style></head>\n<body>\n\
         <header><a href=\"/\">trdr</a> operations</header>\n<main>\n{body}\n</main>\n\
         <script>{script}</script>\n</body></html>\n",
        escape(title),
        include_str!("http/dashboard.css"),
    ))
}

/// The login form; `back` is where it returns to once logged in.
fn login_form(back: &str, error: Option<&str>) -> Html<String> {
    let error = error.map_or_else(String::new, |error| {
        format!("<p class=\"error\">{}</p>", escape(error))
    });
    page(
        "Log in",
        &format!(
            "<h1>Log in</h1>{error}\
             <p>This dashboard needs the server's auth token (<code>--auth-token</code>, \
             <code>TRDR_AUTH_TOKEN</code>, or the <code>auth-token</code> file of its state \
             directory).</p>\
             <form method=\"post\" action=\"/login\" id=\"login\">\
             <input type=\"hidden\" name=\"next\" value=\"{}\">\
             <label>Token <input type=\"password\" name=\"token\" id=\"token\" \
             autocomplete=\"current-password\" required></label> \
             <button type=\"submit\">Log in</button></form>",
            escape(back)
        ),
        "",
    )
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
}

/// The `name=value` pairs of the request's `Cookie` headers.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

#[cfg(test)]
mod tests;
