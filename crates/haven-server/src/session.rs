//! One client's WebSocket session: bind, bootstrap, then uploads in and
//! history out until the connection ends. Any error is answered with an
//! `Error` message and closes this connection only.

use crate::admission::{self, Claim, Held, Known, Verdict};
use crate::auth::{AuthError, Identity};
use crate::serve::Shared;
use crate::storage::{ResetTarget, SnapshotEnd, Storage, StorageError};
use axum::extract::ws::{Message, WebSocket};
use haven_core::merge::{validate, Changeset};
use haven_core::Schema;
use haven_sync::protocol::{
    self, Action, ClientMessage, DownloadPosition, ErrorCode, FileIdent, FrameError, ResetReason, ServerMessage,
    SnapshotObject,
};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A client must bind within this time of connecting.
const BIND_TIMEOUT: Duration = Duration::from_secs(30);
/// Encoded object states per `Bootstrap` message, about.
const BOOTSTRAP_BYTES: usize = 1 << 20;
/// A client that takes longer than this to take a frame is dropped (it
/// is not reading, and would hold the session's resources forever).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Changesets per `Download` message (fewer if the frame would be too large).
const DOWNLOAD_BATCH: usize = 256;

/// Why a session ends early: what the client is told.
struct Refusal {
    code: ErrorCode,
    message: String,
    action: Action,
    /// A client speaking another protocol version: told in its framing.
    client_version: Option<u16>,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>, action: Action) -> Refusal {
        Refusal { code, message: message.into(), action, client_version: None }
    }

    /// The client is told to come back, whatever failed (it cannot help,
    /// and the details are the operator's); the log says what it was.
    fn storage(e: StorageError) -> Refusal {
        match &e {
            StorageError::Unavailable(_) => tracing::warn!(error = %e, "storage unavailable"),
            _ => tracing::error!(error = %e, "storage failed"),
        }
        Refusal::new(ErrorCode::Unavailable, "the server's storage failed; try again later", retry())
    }

    fn token(e: AuthError) -> Refusal {
        let code = match e {
            AuthError::PartitionDenied { .. } => ErrorCode::PartitionDenied,
            AuthError::Expired => ErrorCode::TokenExpired,
            _ => ErrorCode::BadToken,
        };
        Refusal::new(code, e.to_string(), Action::Fatal)
    }

    fn reset(reset: admission::Reset) -> Refusal {
        let action = reset.action();
        Refusal::new(ErrorCode::ClientReset, reset.message, action)
    }

    fn frame(e: FrameError) -> Refusal {
        match e {
            FrameError::WrongVersion { found, .. } => {
                Refusal { client_version: Some(found), ..Refusal::new(e.code(), e.to_string(), Action::Fatal) }
            }
            e => Refusal::new(e.code(), e.to_string(), retry()),
        }
    }
}

fn retry() -> Action {
    Action::Reconnect { after_ms: 1_000 }
}

/// Runs a session to its end.
pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>) {
    shared.metrics.connections.fetch_add(1, Relaxed);
    let mut session = Session {
        socket,
        shared: shared.clone(),
        client_version: protocol::PROTOCOL_VERSION,
        partition: None,
        live: None,
    };
    if let Err(refusal) = session.serve().await {
        shared.metrics.refused.fetch_add(1, Relaxed);
        if refusal.code == ErrorCode::Unavailable {
            tracing::info!(message = %refusal.message, "session ended");
        } else {
            tracing::warn!(code = ?refusal.code, message = %refusal.message, "session refused");
        }
        let _ = match refusal.client_version {
            Some(version) => match protocol::encode_version_refusal(version, refusal.message) {
                Ok(frame) => session.send_frame(frame).await,
                Err(e) => Err(Refusal::frame(e)),
            },
            None => {
                let Refusal { code, message, action, .. } = refusal;
                session.send(&ServerMessage::Error { code, message, action }).await
            }
        };
    }
    let _ = session.socket.send(Message::Close(None)).await;
    if let Some(partition) = session.partition.take() {
        shared.release_partition(&partition);
    }
    if let Some(id) = session.live.take() {
        shared.live.lock().expect("live sessions").remove(&id);
    }
    shared.metrics.connections.fetch_sub(1, Relaxed);
}

struct Session {
    socket: WebSocket,
    shared: Arc<Shared>,
    /// The protocol version the client speaks, from its frames: what it
    /// is answered in.
    client_version: u16,
    /// The partition whose version channel this session holds.
    partition: Option<String>,
    /// Its entry among the live sessions, once bound.
    live: Option<u64>,
}

/// What a bound session watches besides its socket.
struct Watches {
    /// The partition's latest version.
    latest: watch::Receiver<u64>,
    /// An operator's reset of this client.
    kicked: watch::Receiver<Option<ResetReason>>,
    /// Users signed out.
    revocations: watch::Receiver<std::collections::HashMap<String, u64>>,
}

/// A bound client.
struct Bound {
    ident: FileIdent,
    partition: String,
    schema: Arc<Schema>,
    /// The last server version sent to the client, and its salt.
    sent: u64,
    sent_salt: u64,
    /// The last `uploaded_through` sent to the client.
    acknowledged: u64,
    /// The last server version the client is known to hold (what it bound
    /// with, or the snapshot it was sent): the history it may still need
    /// starts after it (`--max-offline-time`).
    holds: u64,
}

impl Session {
    async fn serve(&mut self) -> Result<(), Refusal> {
        let first = match tokio::time::timeout(BIND_TIMEOUT, self.receive()).await {
            Ok(message) => message?,
            Err(_) => return Err(Refusal::new(ErrorCode::UnexpectedMessage, "no Bind within 30 s", retry())),
        };
        let Some(ClientMessage::Bind {
            token,
            partition,
            file_ident,
            last_server_version,
            last_server_version_salt,
            uploaded_through,
            last_client_version,
            schema,
            resetting,
            request_reset,
        }) = first
        else {
            return Err(Refusal::new(ErrorCode::UnexpectedMessage, "the first message must be Bind", retry()));
        };
        let identity = self.shared.auth.authorize(&token, &partition).await.map_err(Refusal::token)?;
        // Subscribed before the check: a revocation after it is heard.
        let revocations = self.shared.revocations.subscribe();
        if self.shared.is_revoked(&identity) {
            return Err(Refusal::token(AuthError::Revoked { user: identity.user }));
        }
        let user = identity.user.clone();
        // The schema first: a conflicting one is refused before anything
        // is registered, unless the file must start again anyway.
        let (schema, schema_conflict) = match adopt_schema(&self.shared, &schema, resetting).await {
            Ok(schema) => (Some(schema), None),
            Err(refusal) if refusal.code == ErrorCode::BadSchema => (None, Some(refusal.message)),
            Err(refusal) => return Err(refusal),
        };
        let claim = Claim {
            partition: partition.clone(),
            has_ident: file_ident.is_some(),
            // A new file holds nothing, whatever it says.
            held: match file_ident {
                Some(_) => Held { version: last_server_version, salt: last_server_version_salt },
                None => Held { version: 0, salt: 0 },
            },
            uploaded_through,
            last_client_version,
            request_reset,
        };
        let known = known(&self.shared, file_ident, &claim, schema_conflict).await?;
        match admission::admit(&claim, &known) {
            Verdict::Admit => {}
            Verdict::Reset(reset) => {
                return Err(match (file_ident, reset.acknowledged) {
                    (Some(ident), Some(_)) => {
                        reset_client(&self.shared, ident, partition.clone(), reset.reason, reset.message).await
                    }
                    _ => Refusal::reset(reset),
                })
            }
            Verdict::Refuse { code, message, action } => return Err(Refusal::new(code, message, action)),
        }
        let schema = schema.expect("admitted, so the schema was adopted");
        let acknowledged = known.record.as_ref().map_or(0, |r| r.uploaded_through);
        let mut bound = self.bind(&partition, file_ident, claim.held, acknowledged, known.latest, schema).await?;
        tracing::info!(%user, %partition, ident = bound.ident.ident, "client bound");
        let (versions, latest) = self.shared.partition(&partition);
        self.partition = Some(partition.clone());
        let (id, kicked) = self.shared.register_live(bound.ident, &user, &partition);
        self.live = Some(id);
        // Checked again once registered: an operator's reset made meanwhile
        // either finds this session to kick, or is found here.
        let ident = bound.ident.ident;
        if let Some(reason) = storage(&self.shared, move |s| s.pending_reset(ident)).await? {
            let message = admission::operator_message(reason);
            return Err(reset_client(&self.shared, bound.ident, partition, reason, message).await);
        }
        note_seen(&self.shared, &bound).await;
        let watches = Watches { latest, kicked, revocations };
        let ended = self.exchange(&mut bound, &identity, versions, watches).await;
        note_seen(&self.shared, &bound).await;
        ended
    }

    /// Registers a new client, answers `Bound`, and sends the snapshot to
    /// a client that starts from nothing.
    async fn bind(
        &mut self,
        partition: &str,
        file_ident: Option<FileIdent>,
        held: Held,
        acknowledged: u64,
        version: u64,
        schema: Arc<Schema>,
    ) -> Result<Bound, Refusal> {
        let ident = match file_ident {
            Some(ident) => ident,
            None => {
                let name = partition.to_owned();
                storage(&self.shared, move |s| s.register_client(&name)).await?
            }
        };
        let json = schema.to_json();
        self.send(&ServerMessage::Bound { file_ident: ident, server_version: version, schema: json }).await?;
        let (sent, sent_salt) = (held.version, held.salt);
        let mut bound =
            Bound { ident, partition: partition.to_owned(), schema, sent, sent_salt, acknowledged, holds: sent };
        if held.version == 0 && version > 0 {
            let end = self.bootstrap(partition, ident).await?;
            (bound.sent, bound.sent_salt, bound.acknowledged, bound.holds) =
                (end.version, end.salt, end.uploaded_through, end.version);
        }
        Ok(bound)
    }

    /// Streams the partition's current state, ending with its version and
    /// the client's acknowledgement as of that version (a changeset the
    /// snapshot holds must not stay pending on the client).
    async fn bootstrap(&mut self, partition: &str, ident: FileIdent) -> Result<SnapshotEnd, Refusal> {
        let (tx, mut rx) = mpsc::channel::<Vec<SnapshotObject>>(2);
        let shared = self.shared.clone();
        let name = partition.to_owned();
        let reader = tokio::spawn(async move {
            let mut send = move |objects| {
                tx.blocking_send(objects).map_err(|_| StorageError::Backend("the client went away".into()))
            };
            shared.storage(move |s| s.snapshot(&name, ident.ident, BOOTSTRAP_BYTES, &mut send)).await
        });
        while let Some(objects) = rx.recv().await {
            if !objects.iter().all(|o| protocol::readable_state(self.client_version, o)) {
                return Err(self.too_old_for_partition());
            }
            let batch = ServerMessage::Bootstrap {
                objects,
                last: false,
                server_version: 0,
                server_version_salt: 0,
                uploaded_through: 0,
            };
            self.send(&batch).await?;
        }
        let end = reader.await.map_err(|e| Refusal::storage(StorageError::Backend(e.to_string())))?;
        let end = end.map_err(Refusal::storage)?;
        let SnapshotEnd { version, salt, uploaded_through } = end;
        let last = ServerMessage::Bootstrap {
            objects: vec![],
            last: true,
            server_version: version,
            server_version_salt: salt,
            uploaded_through,
        };
        self.send(&last).await?;
        Ok(end)
    }

    /// The bound session: frames in, history out.
    async fn exchange(
        &mut self,
        bound: &mut Bound,
        identity: &Identity,
        versions: watch::Sender<u64>,
        watches: Watches,
    ) -> Result<(), Refusal> {
        let Watches { mut latest, mut kicked, mut revocations } = watches;
        let mut shutdown = self.shared.shutdown.clone();
        let expiry = token_expiry(identity, self.shared.auth.leeway_secs());
        // A long session counts as being in touch (`--max-offline-time`).
        let mut in_touch = tokio::time::interval(self.shared.max_offline.map_or(Duration::from_secs(3600), |max| {
            (max / 4).clamp(Duration::from_millis(50), Duration::from_secs(3600))
        }));
        in_touch.tick().await;
        // The first Download also repeats the acknowledgement, which a cut
        // connection may have lost.
        self.catch_up(bound, true).await?;
        let silence = self.shared.client_silence;
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                message = tokio::time::timeout_at(heard + silence, self.receive()) => {
                    let Ok(message) = message else {
                        // Clients ping every 10 s: this one is gone (a
                        // half-open connection) and would hold its session.
                        tracing::info!(client = bound.ident.ident, "no frame for {silence:?}: closing the connection");
                        return Ok(());
                    };
                    heard = tokio::time::Instant::now();
                    match message? {
                        None => return Ok(()),
                        Some(ClientMessage::Upload { changesets }) => {
                            self.upload(bound, &changesets, &versions).await?;
                            self.catch_up(bound, false).await?;
                        }
                        Some(ClientMessage::Mark { request }) => {
                            self.catch_up(bound, false).await?;
                            self.send(&ServerMessage::Mark { request, server_version: bound.sent }).await?;
                        }
                        Some(ClientMessage::Ping { nonce }) => self.send(&ServerMessage::Pong { nonce }).await?,
                        Some(ClientMessage::Bind { .. }) => {
                            return Err(Refusal::new(ErrorCode::UnexpectedMessage, "Bind sent twice", retry()))
                        }
                    }
                }
                changed = latest.changed() => {
                    changed.expect("the session holds the sender");
                    self.catch_up(bound, false).await?;
                }
                reason = reset_by_operator(&mut kicked) => {
                    let message = admission::operator_message(reason);
                    return Err(reset_client(&self.shared, bound.ident, bound.partition.clone(), reason, message).await)
                }
                _ = in_touch.tick() => note_seen(&self.shared, bound).await,
                () = expired(expiry) => {
                    let message = "the token expired during the session: get a fresh one and reconnect";
                    return Err(Refusal::new(ErrorCode::TokenExpired, message, Action::Reconnect { after_ms: 0 }));
                }
                _ = revocations.changed() => {
                    if self.shared.is_revoked(identity) {
                        return Err(Refusal::token(AuthError::Revoked { user: identity.user.clone() }));
                    }
                }
                () = stopping(&mut shutdown) => {
                    return Err(Refusal::new(ErrorCode::Unavailable, "the server is shutting down", retry()));
                }
            }
        }
    }

    /// Validates the whole upload, then integrates it in one storage
    /// transaction and tells the partition's other sessions.
    async fn upload(
        &mut self,
        bound: &Bound,
        changesets: &[Changeset],
        versions: &watch::Sender<u64>,
    ) -> Result<(), Refusal> {
        for cs in changesets {
            validate(&bound.schema, cs)
                .map_err(|e| Refusal::new(ErrorCode::BadUpload, e.to_string(), Action::Fatal))?;
        }
        let (ident, seen, changesets) = (bound.ident, bound.sent, changesets.to_vec());
        let started = Instant::now();
        let integration = match self.shared.storage(move |s| s.integrate(ident, &changesets, seen, now_millis())).await
        {
            Ok(integration) => integration,
            // Reset meanwhile (an operator, or this client's next bind on
            // another connection): this connection's uploads are over.
            Err(StorageError::ResetPending(_)) => {
                let id = ident.ident;
                let reason = storage(&self.shared, move |s| s.pending_reset(id)).await?;
                let reason = reason.unwrap_or(ResetReason::OperatorReset);
                let message = admission::operator_message(reason);
                return Err(reset_client(&self.shared, ident, bound.partition.clone(), reason, message).await);
            }
            Err(e) => return Err(Refusal::storage(e)),
        };
        self.shared.metrics.observe_integration(started.elapsed());
        if let Some(&version) = integration.versions.last() {
            self.shared.metrics.changesets_integrated.fetch_add(integration.versions.len() as u64, Relaxed);
            versions.send_if_modified(|latest| {
                let newer = version > *latest;
                *latest = (*latest).max(version);
                newer
            });
        }
        Ok(())
    }

    /// Sends the history the client lacks. The acknowledgement is read
    /// before the history, so every changeset it covers is in what is sent.
    async fn catch_up(&mut self, bound: &mut Bound, always: bool) -> Result<(), Refusal> {
        let ident = bound.ident;
        let through = storage(&self.shared, move |s| s.client(ident)).await?.uploaded_through;
        let mut batch = DOWNLOAD_BATCH;
        loop {
            let (partition, after) = (bound.partition.clone(), bound.sent);
            let history = storage(&self.shared, move |s| s.history_encoded(&partition, after, batch)).await?;
            if let Some(first) = history.first() {
                if first.version > after + 1 {
                    // Compacted while this client was behind.
                    let message = admission::trimmed_message(after, first.version - 1);
                    let (ident, partition) = (bound.ident, bound.partition.clone());
                    return Err(
                        reset_client(&self.shared, ident, partition, ResetReason::HistoryTrimmed, message).await
                    );
                }
            }
            let last = history.len() < batch;
            if history.is_empty() && through == bound.acknowledged && !always {
                return Ok(());
            }
            let (sent, sent_salt) = history.last().map_or((bound.sent, bound.sent_salt), |h| (h.version, h.salt));
            let acknowledged = if last { through } else { bound.acknowledged };
            // Sent as stored: the server decodes history only for a client
            // of an older protocol, which must not be sent what it cannot read.
            let stored: Vec<(u64, &[u8])> = history.iter().map(|h| (h.version, h.changeset.as_slice())).collect();
            if !stored.iter().all(|(_, c)| protocol::readable_changeset(self.client_version, c)) {
                return Err(self.too_old_for_partition());
            }
            let position = DownloadPosition {
                uploaded_through: acknowledged,
                server_version: sent,
                server_version_salt: sent_salt,
            };
            match protocol::encode_download(&stored, position) {
                Ok(frame) => self.send_frame(frame).await?,
                Err(FrameError::TooLarge { .. }) if batch > 1 => {
                    batch /= 2;
                    continue;
                }
                Err(e) => {
                    return Err(Refusal::new(ErrorCode::Unavailable, format!("cannot send history: {e}"), retry()))
                }
            }
            (bound.sent, bound.sent_salt) = (sent, sent_salt);
            bound.acknowledged = acknowledged;
            if last {
                return Ok(());
            }
        }
    }

    /// The next message; `None` once the client closed.
    async fn receive(&mut self) -> Result<Option<ClientMessage>, Refusal> {
        loop {
            let frame = match self.socket.recv().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Text(_))) => {
                    return Err(Refusal::new(ErrorCode::BadFrame, "text frames are not part of the protocol", retry()))
                }
                Some(Err(e)) => return receive_error(e),
            };
            self.shared.metrics.bytes_in.fetch_add(frame.len() as u64, Relaxed);
            let (message, version) = protocol::decode_served(&frame).map_err(Refusal::frame)?;
            self.client_version = version;
            if matches!(message, ClientMessage::Upload { .. }) && frame.len() > protocol::MAX_UPLOAD_BYTES {
                // Its history must fit in a Download, which carries a little more.
                let message = format!(
                    "an upload frame may be at most {} bytes, this one has {}: split large write transactions",
                    protocol::MAX_UPLOAD_BYTES,
                    frame.len()
                );
                return Err(Refusal::new(ErrorCode::BadUpload, message, Action::Fatal));
            }
            return Ok(Some(message));
        }
    }

    /// The refusal of a client whose protocol cannot read what the
    /// partition now holds.
    fn too_old_for_partition(&self) -> Refusal {
        let message = format!(
            "this partition holds changes that protocol {} cannot read (list element edits need protocol {}, sets and dictionaries protocol {}, edits of embedded objects in lists protocol {}): update the app",
            self.client_version,
            protocol::LIST_ELEMENTS_VERSION,
            protocol::COLLECTIONS_VERSION,
            protocol::ELEMENT_FIELDS_VERSION,
        );
        Refusal::new(ErrorCode::WrongProtocolVersion, message, Action::Fatal)
    }

    async fn send(&mut self, message: &ServerMessage) -> Result<(), Refusal> {
        let frame = match message {
            // Protocol 4 has no TokenExpired: it hears a refused token, and
            // binding again with it is refused as before.
            ServerMessage::Error { code: ErrorCode::TokenExpired, message, action }
                if self.client_version < protocol::TOKEN_EXPIRED_VERSION =>
            {
                let error =
                    ServerMessage::Error { code: ErrorCode::BadToken, message: message.clone(), action: *action };
                protocol::encode(&error)
            }
            message => protocol::encode(message),
        };
        self.send_frame(frame.map_err(Refusal::frame)?).await
    }

    async fn send_frame(&mut self, mut frame: Vec<u8>) -> Result<(), Refusal> {
        if self.client_version != protocol::PROTOCOL_VERSION {
            protocol::reframe(&mut frame, self.client_version);
        }
        self.shared.metrics.bytes_out.fetch_add(frame.len() as u64, Relaxed);
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Binary(frame.into()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Refusal::new(ErrorCode::Unavailable, format!("connection lost: {e}"), retry())),
            Err(_) => Err(Refusal::new(ErrorCode::Unavailable, "the client stopped reading", retry())),
        }
    }
}

/// What storage knows of a binding client, for [`admission::admit`].
async fn known(
    shared: &Arc<Shared>,
    file_ident: Option<FileIdent>,
    claim: &Claim,
    schema_conflict: Option<String>,
) -> Result<Known, Refusal> {
    let (partition, held) = (claim.partition.clone(), claim.held);
    let (max_offline, started) = (shared.max_offline, shared.started_millis);
    storage(shared, move |s| {
        let record = match file_ident.map(|ident| s.client(ident)) {
            None | Some(Err(StorageError::UnknownClient(_) | StorageError::SaltMismatch(_))) => None,
            Some(record) => Some(record?),
        };
        let pending_reset = file_ident.map(|i| s.pending_reset(i.ident)).transpose()?.flatten();
        let seen = match (max_offline, file_ident) {
            (Some(_), Some(ident)) => s.last_seen(&partition, ident.ident)?,
            _ => None,
        };
        // Time the server was down does not count.
        let away = seen
            .zip(max_offline)
            .map(|(seen, max)| (Duration::from_millis(now_millis().saturating_sub(seen.max(started))), max));
        let settings = s.partition_settings(&partition)?;
        let salt_of_held = if held.version == 0 { None } else { s.version_salt(&partition, held.version)? };
        Ok(Known {
            schema_conflict,
            record,
            pending_reset,
            away,
            latest: s.version(&partition)?,
            trimmed_through: settings.trimmed_through,
            salt_of_held,
            recovery_allowed: settings.recovery_allowed,
        })
    })
    .await
}

/// A client reset of a known client, as the client is told it. The
/// client is marked for the reset first, so that nothing more of its
/// ident is integrated (an upload still on its way on another connection
/// is refused), and only then is how far the server integrated it read:
/// that `acknowledged` stays true, and the recovery never applies a
/// changeset twice.
async fn reset_client(
    shared: &Arc<Shared>,
    ident: FileIdent,
    partition: String,
    reason: ResetReason,
    message: String,
) -> Refusal {
    let known = storage(shared, move |s| {
        let acknowledged = match s.mark_reset(&ResetTarget::Client(ident.ident), reason).and_then(|_| s.client(ident)) {
            Ok(record) => Some(record.uploaded_through),
            Err(StorageError::UnknownClient(_) | StorageError::SaltMismatch(_)) => None,
            Err(e) => return Err(e),
        };
        Ok((acknowledged, s.partition_settings(&partition)?.recovery_allowed))
    })
    .await;
    // Its other connections (one the device gave up on, say) end too.
    shared.kick(&[ident.ident], reason);
    match known {
        Ok((acknowledged, recovery_allowed)) => {
            Refusal::reset(admission::Reset { reason, message, acknowledged, recovery_allowed })
        }
        Err(refusal) => refusal,
    }
}

/// [`Shared::storage`], its failure told to the client.
async fn storage<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&dyn Storage) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, Refusal> {
    shared.storage(f).await.map_err(Refusal::storage)
}

/// The server's schema after a client's additions. A conflicting schema
/// is refused, except from a file carrying out a client reset
/// (`lenient`): after an operator's breaking schema change, devices with
/// the old app start again, and the server's definitions win (their
/// recovery drops what does not fit, and the server refuses uploads that
/// do not).
async fn adopt_schema(shared: &Arc<Shared>, client_json: &str, lenient: bool) -> Result<Arc<Schema>, Refusal> {
    let bad = |e: haven_core::SchemaError| Refusal::new(ErrorCode::BadSchema, e.to_string(), Action::Fatal);
    let client = Schema::from_json(client_json).map_err(bad)?;
    // Held while storing: two binds adding different types must not each
    // store a union without the other's.
    let mut current = shared.schema.lock().await;
    let merged = match current.as_deref() {
        Some(server) if lenient => server.combine(&client, false).map_err(bad)?.0,
        Some(server) => server.union(&client).map_err(bad)?,
        None => client,
    };
    if current.as_deref() != Some(&merged) {
        let json = merged.to_json();
        storage(shared, move |s| s.set_schema(&json)).await?;
        *current = Some(Arc::new(merged));
    }
    Ok(current.clone().expect("just set"))
}

/// A read error: the client went away (`Ok(None)`), or sent a frame that
/// cannot be read.
fn receive_error(e: axum::Error) -> Result<Option<ClientMessage>, Refusal> {
    use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
    let e = match e.into_inner().downcast::<WsError>() {
        Ok(e) => *e,
        Err(other) => {
            return Err(Refusal::new(ErrorCode::BadFrame, format!("cannot read the frame: {other}"), retry()))
        }
    };
    match e {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Io(_)
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Ok(None),
        WsError::Capacity(e) => {
            let message = format!("{e}; frames are at most {} bytes", protocol::MAX_FRAME_BYTES);
            Err(Refusal::new(ErrorCode::FrameTooLarge, message, retry()))
        }
        e => Err(Refusal::new(ErrorCode::BadFrame, format!("cannot read the frame: {e}"), retry())),
    }
}

/// Returns the reason once an operator resets this session's client.
async fn reset_by_operator(kicked: &mut watch::Receiver<Option<ResetReason>>) -> ResetReason {
    let reason = kicked.wait_for(Option::is_some).await.map(|r| r.expect("waited for it"));
    match reason {
        Ok(reason) => reason,
        Err(_) => std::future::pending().await, // the registry dropped: never
    }
}

/// When a session bound with `identity`'s token must end: its `exp`,
/// plus the clock skew allowed.
fn token_expiry(identity: &Identity, leeway_secs: u64) -> Option<tokio::time::Instant> {
    let exp = Duration::from_secs(identity.expires_at?.saturating_add(leeway_secs));
    let left = exp.saturating_sub(Duration::from_millis(now_millis()));
    tokio::time::Instant::now().checked_add(left) // none: it never expires in practice
}

/// Returns at `expiry`; never without one.
async fn expired(expiry: Option<tokio::time::Instant>) {
    match expiry {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Notes that the bound client is in touch (only with `--max-offline-time`).
async fn note_seen(shared: &Arc<Shared>, bound: &Bound) {
    if shared.max_offline.is_none() {
        return;
    }
    let (partition, ident, holds) = (bound.partition.clone(), bound.ident.ident, bound.holds);
    if let Err(refusal) = storage(shared, move |s| s.client_seen(&partition, ident, holds, now_millis())).await {
        tracing::warn!(message = %refusal.message, "cannot note that a client is in touch");
    }
}

/// Returns once the server is shutting down.
pub(crate) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
