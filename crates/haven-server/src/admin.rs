//! The admin HTTP API under `/admin/v1`, for operators (`haven admin`):
//! bearer `--admin-token`; off when the server has none. Today: list
//! partitions and their connected clients, reset one client, terminate a
//! partition, compact its history, allow or forbid recovery, change the
//! schema, sign a user out.

use crate::serve::Shared;
use crate::storage::{ResetTarget, StorageError};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use haven_sync::protocol::ResetReason;
use serde_json::json;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/partitions", get(partitions))
        .route("/partitions/{partition}/terminate", post(terminate))
        .route("/partitions/{partition}/compact", post(compact))
        .route("/partitions/{partition}/recovery", post(recovery))
        .route("/clients/{ident}/reset", post(reset_client))
        .route("/users/{sub}/revoke", post(revoke_user))
        .route("/schema", put(put_schema))
}

/// An admin request refused or failed: a status and a message that says
/// what to do.
struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StorageError> for AdminError {
    fn from(e: StorageError) -> AdminError {
        let status = match &e {
            StorageError::UnknownClient(_) | StorageError::SaltMismatch(_) => StatusCode::NOT_FOUND,
            StorageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            StorageError::Misuse(_) => StatusCode::BAD_REQUEST,
            StorageError::ResetPending(_) => StatusCode::CONFLICT,
            StorageError::Corrupt(_)
            | StorageError::Io(_)
            | StorageError::FormatTooNew { .. }
            | StorageError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &e {
            StorageError::UnknownClient(ident) | StorageError::SaltMismatch(ident) => format!("no client {ident}"),
            StorageError::Unavailable(_) => format!("{e}: try again later"),
            e => format!("{e}: see the server's log"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "admin request failed");
        }
        AdminError(status, message)
    }
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), AdminError> {
    let Some(expected) = &shared.admin_token else {
        return Err(AdminError(
            StatusCode::NOT_FOUND,
            "the admin API is off: start haven serve with --admin-token".into(),
        ));
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(AdminError(StatusCode::UNAUTHORIZED, "wrong admin token".into())),
        None => Err(AdminError(StatusCode::UNAUTHORIZED, "send Authorization: Bearer <admin token>".into())),
    }
}

/// Compares without stopping at the first difference, so that response
/// times do not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET partitions`: each partition's version and connected clients.
async fn partitions(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Result<Response, AdminError> {
    authorize(&shared, &headers)?;
    let stored = shared.storage(|s| s.partitions()).await?;
    let live = shared.live.lock().expect("live sessions");
    let list: Vec<_> = stored
        .into_iter()
        .map(|(partition, version)| {
            let mut clients: Vec<u64> =
                live.values().filter(|s| s.partition == partition).map(|s| s.ident.ident).collect();
            clients.sort_unstable();
            json!({ "partition": partition, "version": version, "connected_clients": clients })
        })
        .collect();
    Ok(Json(json!({ "partitions": list })).into_response())
}

/// `POST clients/{ident}/reset`: the client starts again from the server's state.
async fn reset_client(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(ident): Path<u64>,
) -> Result<Response, AdminError> {
    authorize(&shared, &headers)?;
    reset_response(&shared, ResetTarget::Client(ident), ResetReason::OperatorReset).await
}

/// `POST users/{sub}/revoke`: signs the user out (their sessions close
/// now, their tokens issued until now are refused).
async fn revoke_user(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(sub): Path<String>,
) -> Result<Response, AdminError> {
    authorize(&shared, &headers)?;
    let closed = shared.revoke(&sub);
    Ok(Json(json!({ "user": sub, "sessions_closed": closed })).into_response())
}

/// `POST partitions/{p}/terminate`: every client of the partition starts
/// again from the server's state.
async fn terminate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(partition): Path<String>,
) -> Result<Response, AdminError> {
    authorize(&shared, &headers)?;
    reset_response(&shared, ResetTarget::Partition(partition), ResetReason::Terminated).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactRequest {
    keep_versions: u64,
}

/// `POST partitions/{p}/compact {"keep_versions": N}`: history before the
/// last N versions goes; clients that still need it will reset.
async fn compact(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(partition): Path<String>,
    body: Result<Json<CompactRequest>, JsonRejection>,
) -> Result<Response, AdminError> {
    authorize(&shared, &headers)?;
    let Json(CompactRequest { keep_versions }) = body.map_err(bad_body(r#"{"keep_versions": N}"#))?;
    let name = partition.clone();
    let through = shared.storage(move |s| s.compact(&name, keep_versions)).await?;
    tracing::warn!(%partition, through, "history compacted");
    Ok(Json(json!({ "partition": partition, "trimmed_through": through })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoveryRequest {
    allowed: bool,
}

/// `POST partitions/{p}/recovery {"allowed": bool}`: whether client
/// resets in the partition may recover unsynced writes
/// (`ClientResetNoRecovery` when not).
async fn recovery(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(partition): Path<String>,
    body: Result<Json<RecoveryRequest>, JsonRejection>,
) -> Result<Response, AdminError> {
    authorize(&shared, &headers)?;
    let Json(RecoveryRequest { allowed }) = body.map_err(bad_body(r#"{"allowed": true|false}"#))?;
    let name = partition.clone();
    shared.storage(move |s| s.set_recovery_allowed(&name, allowed)).await?;
    Ok(Json(json!({ "partition": partition, "recovery_allowed": allowed })).into_response())
}

/// `PUT schema` (body: the schema JSON, as `Schema::from_json` reads it):
/// the server's schema becomes this one, plus whatever it had that this
/// lacks. Additions reset nobody; a breaking change (a property's type
/// changed, a new required property, a new primary key) resets every
/// client of every partition (`SchemaBreaking`), whose recovery then drops
/// what no longer fits.
async fn put_schema(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, AdminError> {
    authorize(&shared, &headers)?;
    let requested = haven_core::Schema::from_json(&body)
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, format!("{e}; send the schema JSON, as clients use it")))?;
    // Held while storing: a client binding meanwhile sees the old or the new schema, whole.
    let mut current = shared.schema.lock().await;
    let (schema, breaking) = match current.as_deref() {
        Some(current) => {
            current.combine(&requested, true).map_err(|e| AdminError(StatusCode::BAD_REQUEST, e.to_string()))?
        }
        None => (requested, Vec::new()),
    };
    let json = schema.to_json();
    let stored = json.clone();
    shared.storage(move |s| s.set_schema(&stored)).await?;
    // Every client is marked before the lock goes: a client that binds
    // with the old schema meanwhile finds its reset, not a refusal.
    let mut reset = Vec::new();
    if !breaking.is_empty() {
        tracing::warn!(?breaking, "breaking schema change: every client resets");
        reset = reset_clients(&shared, ResetTarget::All, ResetReason::SchemaBreaking).await?;
    }
    *current = Some(Arc::new(schema));
    drop(current);
    let schema: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let body = json!({ "schema": schema, "breaking": breaking, "reset_clients": reset });
    Ok(Json(body).into_response())
}

/// A body that is not the JSON expected: says what is.
fn bad_body(expected: &'static str) -> impl Fn(JsonRejection) -> AdminError {
    move |e| AdminError(StatusCode::BAD_REQUEST, format!("{}; send {expected}", e.body_text()))
}

/// Resets the target's clients and says which.
async fn reset_response(
    shared: &Arc<Shared>,
    target: ResetTarget,
    reason: ResetReason,
) -> Result<Response, AdminError> {
    let marked = reset_clients(shared, target, reason).await?;
    Ok(Json(json!({ "reset_clients": marked })).into_response())
}

/// Marks the clients in storage first, then tells their live sessions: a
/// session binding meanwhile checks the mark after registering (session.rs).
/// Returns the idents of the clients reset.
pub(crate) async fn reset_clients(
    shared: &Arc<Shared>,
    target: ResetTarget,
    reason: ResetReason,
) -> Result<Vec<u64>, StorageError> {
    let logged = target.clone();
    let marked = shared.storage(move |s| s.mark_reset(&target, reason)).await?;
    shared.kick(&marked, reason);
    tracing::warn!(target = ?logged, ?reason, clients = marked.len(), "operator reset");
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_answer_with_the_status_that_says_what_to_do() {
        let status = |e: StorageError| AdminError::from(e).0;
        assert_eq!(status(StorageError::UnknownClient(3)), StatusCode::NOT_FOUND);
        assert_eq!(status(StorageError::Unavailable("PostgreSQL: refused".into())), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(StorageError::Corrupt("a record".into())), StatusCode::INTERNAL_SERVER_ERROR);
        let io = std::io::Error::other("disk full");
        assert_eq!(status(StorageError::Io(io)), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status(StorageError::Misuse("bad schema name".into())), StatusCode::BAD_REQUEST);
        let AdminError(_, message) = StorageError::Unavailable("PostgreSQL: refused".into()).into();
        assert!(message.ends_with("try again later"), "{message}");
    }
}
