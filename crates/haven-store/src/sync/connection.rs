//! One connection to the server: bind, then upload the change log and
//! apply downloads until the connection ends. Every database call runs
//! on tokio's blocking pool: a durable commit must not stall the runtime.

use super::config::SyncConfig;
use super::liveness::Liveness;
use super::state::{ConnectionState, SessionState};
use super::token::{Refused, SessionToken};
use super::transport::{ConnectError, Endpoint, Socket};
use super::SyncError;
use crate::client_reset::ClientResetMode;
use crate::client_reset_info::ClientResetInfo;
use crate::database::Database;
use crate::replica::change_log::SyncPosition;
use crate::replica::download::ResetCommit;
use crate::replica::reset_tracker::{Plan, ResetRequest, ResetTracker};
use futures_util::{SinkExt, StreamExt};
use haven_core::merge::Changeset;
use haven_sync::protocol::{self, Action, ClientMessage, FileIdent, ServerMessage};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How long connecting and binding may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The size an `Upload` frame aims at: large enough to carry many small
/// changesets at once, small enough that the server's integration of one
/// overlaps the sending of the next.
const UPLOAD_FRAME_BYTES: usize = 1 << 20;
/// How much of the log is read and queued for upload at a time: a large
/// offline log is sent in steps, not held in memory whole.
const UPLOAD_QUEUE_BYTES: usize = 4 << 20;

/// How a connection ended.
pub(crate) enum Ended {
    /// Cut, refused or timed out: reconnect with backoff.
    Lost(String),
    /// The server asked to come back later.
    RetryAfter(Duration),
    /// The server cannot continue this file's history.
    Reset(ResetRequest),
    /// Retrying cannot help.
    Fatal(SyncError),
    /// Retrying as is meets the same refusal until someone fixes it (a
    /// certificate, the token provider): report it, then back off.
    Refused(SyncError),
    /// The server refused the token, and a fresh one may be accepted:
    /// reconnect at once with it.
    Reauthenticate,
    /// The app paused the session.
    Paused,
    /// The database closed.
    Closed,
}

/// A client reset attempt under way on a connection.
struct ResetAttempt {
    plan: Plan,
    tracker: ResetTracker,
    /// The server's schema, as it said when binding.
    server_schema: Option<haven_core::Schema>,
}

/// Frames handed to the writer task but not yet written.
const WRITER_QUEUE: usize = 4;

/// One connection. Frames are written by a task of their own, so that
/// reading never waits for writing: a server that answers each upload
/// while the client is still sending must find the client reading, or
/// both would wait for each other with full socket buffers.
pub(crate) struct Connection<'a> {
    shared: &'a SessionState,
    reader: futures_util::stream::SplitStream<Socket>,
    writer: mpsc::Sender<Outgoing>,
    writer_task: tokio::task::JoinHandle<()>,
    /// Frames waiting for room in the writer's queue: pings and marks
    /// first, then uploads.
    outbox: VecDeque<Outgoing>,
    /// Whether the log holds more than was last queued.
    more_to_upload: bool,
    /// When bytes last came in or went out as part of an upload.
    liveness: Arc<Liveness>,
    ident: FileIdent,
    /// The last client version uploaded on this connection.
    uploaded_through: u64,
    /// Whether a bootstrap is being received.
    bootstrapping: bool,
    /// A client reset attempt: this connection is bound as the file's new
    /// ident and receives the fresh state; nothing uploads until it ends.
    reset: Option<ResetAttempt>,
    /// After a reset committed: how many recovered changesets the server
    /// must acknowledge before the reset is over.
    reset_unacknowledged: Option<u64>,
    /// The last `Mark` request sent.
    mark_sent: u64,
}

impl<'a> Connection<'a> {
    /// Connects, binds and exchanges until the connection ends.
    pub async fn run(shared: &'a SessionState, attempt: &mut u32) -> Ended {
        shared.set_connection(ConnectionState::Connecting);
        let mut connection = match tokio::time::timeout(CONNECT_TIMEOUT, Connection::bind(shared)).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(ended)) => return ended,
            Err(_) => return Ended::Lost("no answer from the server within 30 s".into()),
        };
        *attempt = 0;
        shared.set_connection(ConnectionState::Connected);
        tracing::info!(partition = %shared.config.partition, ident = connection.ident.ident, "sync connected");
        match connection.exchange().await {
            Ok(never) => match never {},
            Err(ended) => ended, // dropping the connection stops its writer and closes the socket
        }
    }

    async fn bind(shared: &'a SessionState) -> Result<Connection<'a>, Ended> {
        // Where the file stands decides how to bind (or, for a reset the
        // app must handle, not to connect at all).
        let db = shared.db().ok_or(Ended::Closed)?;
        let path = db.path().to_owned();
        let (position, schema, tracker) = blocking(db, |db| {
            let snapshot = db.snapshot()?;
            Ok((snapshot.sync_position()?, db.schema().to_json(), snapshot.reset_tracker()?))
        })
        .await?;
        let resetting = tracker.is_some();
        let reset = match tracker.clone() {
            Some(tracker) if tracker.committed.is_none() => match shared.config.client_reset.plan(&tracker) {
                Plan::Manual => return Err(Ended::Fatal(SyncError::ClientReset(ClientResetInfo::of(&tracker, &path)))),
                plan => Some(ResetAttempt { plan, tracker, server_schema: None }),
            },
            _ => None,
        };
        let token = shared.token.for_binding(&shared.config).await.map_err(Ended::Refused)?;
        let liveness = Liveness::new();
        let socket = shared.endpoint.connect(liveness.clone()).await.map_err(Ended::from)?;
        let (sink, reader) = socket.split();
        let (writer, frames) = mpsc::channel(WRITER_QUEUE);
        let writer_task = tokio::spawn(write_frames(sink, frames, liveness.clone()));
        let mut connection = Connection {
            shared,
            reader,
            writer,
            writer_task,
            outbox: VecDeque::new(),
            more_to_upload: false,
            liveness,
            ident: FileIdent { ident: 0, salt: 0 },
            uploaded_through: 0,
            bootstrapping: false,
            reset: None,
            reset_unacknowledged: tracker.and_then(|t| t.committed).map(|(count, _)| count),
            mark_sent: 0,
        };
        // A reset attempt binds as a new file: the server registers it and
        // sends its whole state.
        let position = if reset.is_some() { Default::default() } else { position };
        let bind = bind_message(&shared.config, token, &position, schema, resetting, false);
        let frame = protocol::encode(&bind).map_err(|e| Ended::Fatal(SyncError::Local(e.to_string())))?;
        connection
            .writer
            .send(Outgoing { frame, upload: false })
            .await
            .map_err(|_| Ended::Lost("the connection was cut while binding".into()))?;
        match connection.receive().await? {
            ServerMessage::Bound { file_ident, server_version, schema } => {
                shared.token.accepted();
                if let Some(mut attempt) = reset {
                    attempt.server_schema = haven_core::Schema::from_json(&schema)
                        .inspect_err(|e| tracing::warn!(error = %e, "the server's schema cannot be read"))
                        .ok();
                    tracing::info!(plan = ?attempt.plan, reason = ?attempt.tracker.reason, "client reset: downloading the server's state");
                    connection.ident = file_ident;
                    connection.reset = Some(attempt);
                    if server_version == 0 {
                        // Nothing to download: the server's state is empty.
                        blocking(connection.db()?, |db| db.start_bootstrap()).await?;
                        connection.finish_reset(0, 0).await?;
                    }
                    return Ok(connection);
                }
                if position.file_ident != Some((file_ident.ident, file_ident.salt)) {
                    let db = shared.db().ok_or(Ended::Closed)?;
                    blocking(db, move |db| db.set_file_ident(file_ident.ident, file_ident.salt)).await?;
                }
                connection.ident = file_ident;
                shared.update_progress(|p| p.downloadable = p.downloadable.max(server_version));
                Ok(connection)
            }
            ServerMessage::Error { code, message, action } => Err(shared.server_error(code, message, action)),
            other => Err(Ended::Lost(format!("expected Bound, got {other:?}"))),
        }
    }

    /// Uploads and downloads until something ends the connection.
    async fn exchange(&mut self) -> Result<std::convert::Infallible, Ended> {
        let shared = self.shared;
        let mut control = shared.control.subscribe();
        // Two ping intervals without a word from the server: a lost connection.
        let ping_interval = shared.config.ping_interval;
        let mut ping = tokio::time::interval(ping_interval);
        ping.tick().await;
        self.upload().await?;
        loop {
            let wanted = *control.borrow_and_update();
            if wanted.closed {
                return Err(Ended::Closed);
            }
            if wanted.paused {
                return Err(Ended::Paused);
            }
            if wanted.marks_requested > self.mark_sent {
                self.mark_sent = wanted.marks_requested;
                self.send(ClientMessage::Mark { request: self.mark_sent })?;
            }
            let writer = self.writer.clone();
            tokio::select! {
                message = self.receive() => self.handle(message?).await?,
                permit = writer.reserve(), if !self.outbox.is_empty() => {
                    let permit = permit.map_err(|_| Ended::Lost("the connection was cut while sending".into()))?;
                    permit.send(self.outbox.pop_front().expect("not empty"));
                    if self.outbox.is_empty() && self.more_to_upload {
                        self.upload().await?;
                    }
                }
                () = shared.local_commits.notified() => self.upload().await?,
                _ = control.changed() => {}
                _ = ping.tick() => {
                    if self.liveness.quiet_for() > 2 * ping_interval {
                        return Err(Ended::Lost("the server stopped answering".into()));
                    }
                    self.send(ClientMessage::Ping { nonce: 0 })?;
                }
            }
        }
    }

    async fn handle(&mut self, message: ServerMessage) -> Result<(), Ended> {
        match message {
            ServerMessage::Download { changesets, uploaded_through, server_version, server_version_salt } => {
                // The salt is the last changeset's: its version must be `server_version`.
                if changesets.last().is_some_and(|last| last.server_version != server_version) {
                    let message =
                        format!("the server sent a download that says version {server_version} but ends at another");
                    return Err(Ended::Lost(message));
                }
                let acknowledged = self.shared.status.borrow().progress.uploaded;
                if !changesets.is_empty() || uploaded_through > acknowledged {
                    let changesets: Vec<(u64, Changeset)> =
                        changesets.into_iter().map(|c| (c.server_version, c.changeset)).collect();
                    let ident = self.ident.ident;
                    blocking(self.db()?, move |db| {
                        db.integrate_download(&changesets, server_version_salt, uploaded_through, ident)
                    })
                    .await?;
                }
                self.shared.update_progress(|p| {
                    p.uploaded = p.uploaded.max(uploaded_through);
                    p.downloaded = p.downloaded.max(server_version);
                    p.downloadable = p.downloadable.max(server_version);
                });
                if self.reset_unacknowledged.is_some_and(|n| uploaded_through >= n) {
                    // The recovered changes got through: the reset is over.
                    blocking(self.db()?, |db| db.set_reset_tracker(None)).await?;
                    self.reset_unacknowledged = None;
                    tracing::info!("client reset complete: the server has the recovered changes");
                }
            }
            ServerMessage::Bootstrap { objects, last, server_version, server_version_salt, uploaded_through } => {
                let first = !std::mem::replace(&mut self.bootstrapping, !last);
                let ident = self.ident.ident;
                let resetting = self.reset.is_some();
                blocking(self.db()?, move |db| {
                    if first {
                        db.start_bootstrap()?;
                    }
                    db.bootstrap_batch(&objects)?;
                    if last && !resetting {
                        db.finish_bootstrap(server_version, server_version_salt, uploaded_through, ident)?;
                    }
                    Ok(())
                })
                .await?;
                if last && resetting {
                    self.finish_reset(server_version, server_version_salt).await?;
                } else if last {
                    self.shared.update_progress(|p| {
                        p.uploaded = p.uploaded.max(uploaded_through);
                        p.downloaded = p.downloaded.max(server_version);
                        p.downloadable = p.downloadable.max(server_version);
                    });
                }
            }
            ServerMessage::Mark { request, .. } => {
                self.shared.status.send_if_modified(|s| {
                    let newer = request > s.marks_answered;
                    s.marks_answered = s.marks_answered.max(request);
                    newer
                });
            }
            ServerMessage::Error { code, message, action: Action::None } => {
                self.shared.report(&SyncError::Server { code, message, action: Action::None });
            }
            ServerMessage::Error { code, message, action } => {
                return Err(self.shared.server_error(code, message, action))
            }
            ServerMessage::Pong { .. } => {}
            ServerMessage::Bound { .. } => return Err(Ended::Lost("the server sent Bound twice".into())),
        }
        Ok(())
    }

    /// Ends a reset attempt once the server's state is here: the `before`
    /// callback, the one commit, then `after`. A failed attempt is rolled
    /// back and counted (the next one falls back); the connection ends.
    async fn finish_reset(&mut self, version: u64, salt: u64) -> Result<(), Ended> {
        let ResetAttempt { plan, tracker, server_schema } = self.reset.take().expect("a reset attempt is under way");
        let mode = self.shared.config.client_reset.clone();
        let db = self.db()?;
        let info = ClientResetInfo::of(&tracker, db.path());
        let ident = (self.ident.ident, self.ident.salt);
        let commit = ResetCommit { plan, version, salt, ident, tracker: tracker.clone(), server_schema };
        let committed = blocking(db, move |db| Ok(commit_with_callbacks(db, &mode, commit))).await?;
        let (before, report) = match committed {
            Ok(done) => done,
            Err(why) => {
                tracing::warn!(%why, "client reset attempt failed; rolled back");
                let failed = ResetTracker { failed_attempts: tracker.failed_attempts + 1, ..tracker };
                blocking(self.db()?, move |db| db.set_reset_tracker(Some(&failed))).await?;
                self.shared.report(&SyncError::AutoClientResetFailed(info.failed(why)));
                return Err(Ended::Lost("the client reset attempt failed".into()));
            }
        };
        let recovered = report.recovered().len();
        tracing::info!(?plan, recovered, dropped = report.dropped().len(), version, "client reset committed");
        let unsynced = blocking(self.db()?, |db| Ok(db.sync_position()?.last_client_version)).await?;
        self.shared.reset_committed(version, unsynced);
        (self.uploaded_through, self.reset_unacknowledged) = (0, Some(unsynced));
        let mode = self.shared.config.client_reset.clone();
        blocking(self.db()?, move |db| {
            if let Some(after) = mode.after() {
                if let Err(e) = after(&before, db, &report) {
                    tracing::warn!(error = %e, "the client reset's after callback failed (the reset stays committed)");
                }
            }
            if let (Plan::Discard, ClientResetMode::RecoverOrDiscard { fallback: Some(fallback), .. }) = (plan, &*mode)
            {
                fallback(&info);
            }
            Ok(())
        })
        .await?;
        self.upload().await
    }

    /// Queues the local changesets not yet sent on this connection (the
    /// server skips any it already has), as the log stores them, in frames
    /// of about [`UPLOAD_FRAME_BYTES`], at most [`UPLOAD_QUEUE_BYTES`] at a
    /// time: the rest once the queue has drained.
    async fn upload(&mut self) -> Result<(), Ended> {
        if self.reset.is_some() {
            return Ok(()); // the log is rewritten when the reset ends
        }
        if self.outbox.iter().map(|o| o.frame.len()).sum::<usize>() >= UPLOAD_QUEUE_BYTES {
            self.more_to_upload = true;
            return Ok(());
        }
        let after = self.uploaded_through;
        let pending = blocking(self.db()?, move |db| db.snapshot()?.pending_encoded(after, UPLOAD_QUEUE_BYTES)).await?;
        self.more_to_upload = pending.iter().map(|(_, bytes)| bytes.len()).sum::<usize>() >= UPLOAD_QUEUE_BYTES;
        let Some(&(last, _)) = pending.last() else { return Ok(()) };
        self.shared.update_progress(|p| p.uploadable = p.uploadable.max(last));
        let mut start = 0;
        while start < pending.len() {
            let mut end = start + 1;
            let mut size = pending[start].1.len();
            while end < pending.len() && size + pending[end].1.len() <= UPLOAD_FRAME_BYTES {
                size += pending[end].1.len();
                end += 1;
            }
            let batch: Vec<&[u8]> = pending[start..end].iter().map(|(_, bytes)| bytes.as_slice()).collect();
            let frame = protocol::encode_upload(&batch).map_err(|e| {
                let version = pending[start].0;
                Ended::Fatal(SyncError::Local(format!(
                    "local write {version} cannot be uploaded ({e}); split large write transactions"
                )))
            })?;
            self.outbox.push_back(Outgoing { frame, upload: true });
            self.uploaded_through = pending[end - 1].0;
            start = end;
        }
        Ok(())
    }

    async fn receive(&mut self) -> Result<ServerMessage, Ended> {
        next_message(&mut self.reader).await
    }

    /// Queues a small message ahead of queued uploads: a ping or a mark
    /// must not wait behind megabytes of log.
    fn send(&mut self, message: ClientMessage) -> Result<(), Ended> {
        let frame = protocol::encode(&message).map_err(|e| Ended::Fatal(SyncError::Local(e.to_string())))?;
        self.outbox.push_front(Outgoing { frame, upload: false });
        Ok(())
    }

    fn db(&self) -> Result<Database, Ended> {
        self.shared.db().ok_or(Ended::Closed)
    }
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        // A writer stuck on a server that stopped reading must not outlive the connection.
        self.writer_task.abort();
    }
}

/// A frame for the writer.
struct Outgoing {
    frame: Vec<u8>,
    /// An upload (its bytes going out are progress), not a ping or a mark.
    upload: bool,
}

/// The `Bind` of a file at `position` whose app's schema is `schema`.
fn bind_message(
    config: &SyncConfig,
    token: String,
    position: &SyncPosition,
    schema: String,
    resetting: bool,
    request_reset: bool,
) -> ClientMessage {
    ClientMessage::Bind {
        token,
        partition: config.partition.clone(),
        file_ident: position.file_ident.map(|(ident, salt)| FileIdent { ident, salt }),
        last_server_version: position.base_version,
        last_server_version_salt: position.base_salt,
        uploaded_through: position.acknowledged,
        last_client_version: position.last_client_version,
        schema,
        resetting,
        request_reset,
    }
}

/// Asks the server for a client reset of the file at `position`, whose
/// app now has `schema`, which the file cannot hold. The server checks
/// the schema as for any bind, and grants the reset by answering with
/// it; otherwise the error says why not, for people.
pub(crate) async fn request_reset(
    config: &SyncConfig,
    position: &SyncPosition,
    schema: String,
) -> Result<ResetRequest, String> {
    let endpoint = Endpoint::of(config).map_err(|e| e.to_string())?;
    let token = SessionToken::new(config).for_binding(config).await.map_err(|e| e.to_string())?;
    let bind =
        protocol::encode(&bind_message(config, token, position, schema, false, true)).map_err(|e| e.to_string())?;
    let asked = async {
        let mut socket = endpoint.connect(Liveness::new()).await.map_err(Ended::from)?;
        let cut = |e| Ended::Lost(format!("the connection was cut: {e}"));
        socket.send(Message::Binary(bind.into())).await.map_err(cut)?;
        next_message(&mut socket).await
    };
    let unreachable = |why: String| format!("the server could not be reached ({why}): try again once online");
    let answer = match tokio::time::timeout(CONNECT_TIMEOUT, asked).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(Ended::Fatal(error) | Ended::Refused(error))) => return Err(error.to_string()),
        Ok(Err(Ended::Lost(why))) => return Err(unreachable(why)),
        Ok(Err(_)) => return Err(unreachable("the connection ended".into())),
        Err(_) => return Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    };
    if let Some(granted) = match &answer {
        ServerMessage::Error { action, .. } => reset_asked(*action),
        _ => None,
    } {
        return Ok(granted);
    }
    match answer {
        ServerMessage::Error { code: protocol::ErrorCode::BadSchema, message, .. } => Err(format!(
            "the server does not accept this schema ({message}): an app whose schema is older than the server's must be updated; for a newer one, change the server's schema first (haven admin schema FILE.json)"
        )),
        ServerMessage::Error { code, message, .. } => Err(format!("the server refused ({code:?}): {message}")),
        other => Err(format!(
            "the server answered {other:?} instead of a client reset: check that it runs this version of haven serve"
        )),
    }
}

/// The next message the server sends on `frames`.
async fn next_message(
    frames: &mut (impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Result<ServerMessage, Ended> {
    loop {
        let frame = match frames.next().await {
            None | Some(Ok(Message::Close(_))) => return Err(Ended::Lost("the server closed the connection".into())),
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(Ended::Lost(format!("connection lost: {e}"))),
        };
        return protocol::decode(&frame).map_err(|e| match e {
            // Retrying cannot help: one side must be updated.
            protocol::FrameError::WrongVersion { found, supported } => Ended::Fatal(SyncError::Local(format!(
                "the server speaks sync protocol {found} and this client {supported}: update the older side"
            ))),
            e => Ended::Lost(format!("bad frame from the server: {e}")),
        });
    }
}

/// Writes frames in order until the queue closes or the socket fails,
/// telling `liveness` which bytes belong to uploads.
async fn write_frames(
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    mut frames: mpsc::Receiver<Outgoing>,
    liveness: Arc<Liveness>,
) {
    while let Some(Outgoing { frame, upload }) = frames.recv().await {
        liveness.writing_upload(upload);
        let sent = sink.send(Message::Binary(frame.into())).await;
        liveness.writing_upload(false);
        if sent.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

/// The `before` callback, then the reset's commit: the frozen state
/// before and the report, or why the attempt failed (nothing committed).
fn commit_with_callbacks(
    db: &Database,
    mode: &ClientResetMode,
    commit: ResetCommit,
) -> Result<(Database, haven_core::recovery::RecoveryReport), String> {
    let before = db.freeze().map_err(|e| e.to_string())?;
    if let Some(callback) = mode.before() {
        callback(&before).map_err(|e| format!("the before callback failed: {e}"))?;
    }
    let report = db.finish_reset(commit).map_err(|e| format!("storing the reset failed: {e}"))?;
    Ok((before, report))
}

impl From<ConnectError> for Ended {
    fn from(error: ConnectError) -> Ended {
        match error {
            ConnectError::Lost(why) => Ended::Lost(why),
            ConnectError::Tls(error) => Ended::Refused(error),
        }
    }
}

impl SessionState {
    /// How the connection ends after the server's `Error`: a refused
    /// token is fetched again when the app has a provider.
    fn server_error(&self, code: protocol::ErrorCode, message: String, action: Action) -> Ended {
        use protocol::ErrorCode::{BadToken, TokenExpired};
        if !matches!(code, BadToken | TokenExpired) {
            return ended_by(code, message, action);
        }
        tracing::info!(?code, %message, "the server refused the token");
        let error = SyncError::Server { code, message, action };
        match self.token.refused(&self.config) {
            Refused::Refresh => Ended::Reauthenticate,
            Refused::Retry => Ended::Refused(error),
            Refused::Stop => Ended::Fatal(error),
        }
    }
}

/// How the connection ends after any other `Error` from the server.
fn ended_by(code: protocol::ErrorCode, message: String, action: Action) -> Ended {
    if let Some(request) = reset_asked(action) {
        tracing::warn!(reason = ?request.reason, recovery = request.recovery_allowed, %message, "the server reset this client");
        return Ended::Reset(request);
    }
    match action {
        Action::Reconnect { after_ms } => {
            tracing::info!(?code, %message, "the server asked to reconnect later");
            Ended::RetryAfter(Duration::from_millis(after_ms))
        }
        _ => Ended::Fatal(SyncError::Server { code, message, action }),
    }
}

/// The client reset `action` asks for, if it asks for one.
fn reset_asked(action: Action) -> Option<ResetRequest> {
    match action {
        Action::ClientReset { reason, acknowledged } => {
            Some(ResetRequest { reason, acknowledged, recovery_allowed: true })
        }
        Action::ClientResetNoRecovery { reason, acknowledged } => {
            Some(ResetRequest { reason, acknowledged, recovery_allowed: false })
        }
        _ => None,
    }
}

/// Runs a database call on the blocking pool; a failure stops the session.
async fn blocking<T: Send + 'static>(
    db: Database,
    f: impl FnOnce(&Database) -> crate::Result<T> + Send + 'static,
) -> Result<T, Ended> {
    match tokio::task::spawn_blocking(move || f(&db)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Ended::Fatal(SyncError::Local(e.to_string()))),
        Err(e) => Err(Ended::Fatal(SyncError::Local(format!("a sync task failed: {e}")))),
    }
}
