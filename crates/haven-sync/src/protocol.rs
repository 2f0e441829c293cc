//! The sync protocol's messages and frames. One definition for client and
//! server: a change here changes both, and `PROTOCOL_VERSION` says so.
//!
//! A frame is the bytes `HV`, the protocol version (u16, little-endian)
//! and one message encoded with postcard. Frames travel as binary
//! WebSocket messages and are at most [`MAX_FRAME_BYTES`].

use haven_core::merge::{Changeset, Instruction, ObjectState};
use haven_core::Value;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::time::Duration;

/// The protocol version this build speaks (history: `docs/protocol.md`).
pub const PROTOCOL_VERSION: u16 = 8;

/// The oldest protocol version the server serves. Protocol 5 only added
/// [`ErrorCode::TokenExpired`], which a protocol-4 client is sent as
/// [`ErrorCode::BadToken`]; protocols 6 to 8 only added list element
/// instructions and object states with element identities (6), sets
/// and dictionaries (7), and field edits of embedded objects in lists
/// (8), which older clients are never sent (see [`readable_changeset`]).
pub const OLDEST_SERVED_VERSION: u16 = 4;

/// The protocol version that added the list element instructions
/// (`Instruction::ListAssign` and after) and object states with element
/// identities.
pub const LIST_ELEMENTS_VERSION: u16 = 6;

/// The protocol version that added set, dictionary and decimal128
/// values, the set and dictionary instructions (`Instruction::SetAdd`
/// and after) and object states with their entries.
pub const COLLECTIONS_VERSION: u16 = 7;

/// The protocol version that added field edits of embedded objects in
/// lists (`Instruction::ListElementPut`) and object states with the
/// fields' stamps.
pub const ELEMENT_FIELDS_VERSION: u16 = 8;

/// The protocol version that added [`ErrorCode::TokenExpired`].
pub const TOKEN_EXPIRED_VERSION: u16 = 5;

/// The oldest protocol version whose `Error` frame with action
/// [`Action::Fatal`] reads the same as this version's: a client speaking
/// it is told, in its own framing, that it must be updated.
pub const OLDEST_READABLE_ERROR_VERSION: u16 = 2;

/// The largest frame either side sends or accepts.
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// The largest `Upload` frame: a little less than [`MAX_FRAME_BYTES`], so
/// that the history it becomes always fits in a `Download`.
pub const MAX_UPLOAD_BYTES: usize = MAX_FRAME_BYTES - (64 << 10);

const MAGIC: [u8; 2] = *b"HV";

/// A client's identity on the server: issued at its first bind, kept in
/// its database file. The salt tells a restored server's ident apart from
/// one it issued before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdent {
    /// The ident.
    pub ident: u64,
    /// Random, chosen by the server with the ident.
    pub salt: u64,
}

/// Client to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Opens the session on one partition.
    Bind {
        /// A JWT (or, against a `--dev` server, any string).
        token: String,
        /// The partition to sync.
        partition: String,
        /// `None` on the first bind of a new file.
        file_ident: Option<FileIdent>,
        /// The last server version the client integrated (0: none).
        last_server_version: u64,
        /// The salt the server gave that version (0: none, or a version
        /// integrated before salts existed). A server whose version of
        /// that number has another salt is a different history: one
        /// restored from a backup since.
        last_server_version_salt: u64,
        /// The last of its changesets the server acknowledged to it (0:
        /// none). A server that knows less was restored from a backup.
        uploaded_through: u64,
        /// The last changeset the client wrote (0: none). A server that
        /// acknowledged more is talking to a copy of the file restored
        /// from a backup.
        last_client_version: u64,
        /// The schema the client writes with (the JSON of
        /// `Schema::to_json`). The server adopts additive changes and
        /// refuses breaking ones.
        schema: String,
        /// Whether the file is carrying out a client reset: its schema may
        /// predate an operator's breaking change, and the server's
        /// definitions then win instead of the bind being refused.
        resetting: bool,
        /// The client asks to start again from the server's state: its
        /// app now has a schema its file cannot hold (a breaking change
        /// the server has). The server checks the schema as for any bind,
        /// then answers with a client reset instead of `Bound`.
        request_reset: bool,
    },
    /// Local changesets, in `client_version` order. Idempotent: the server
    /// skips those it has integrated already.
    Upload {
        /// The changesets.
        changesets: Vec<Changeset>,
    },
    /// Asks for a `Mark` back once the server has sent everything up to now.
    Mark {
        /// Echoed back.
        request: u64,
    },
    /// Keep-alive.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
}

/// One object of the state snapshot a new client starts from, in the
/// encoding server and client both store it in, so that neither decodes
/// and re-encodes it on the way (see [`SnapshotObject::encode_state`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotObject {
    /// Its type.
    pub object_type: String,
    /// Its primary key in the order-preserving key encoding (`haven_core::key`).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// `(primary key, state)` encoded with postcard: the state carries
    /// the stamps the merge rule needs.
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
}

impl SnapshotObject {
    /// The encoding of an object's `(primary key, state)`: the snapshot's,
    /// and the one server and client storage keep, so that a snapshot
    /// travels without being decoded and encoded again.
    pub fn encode_state(pk: &Value, state: &ObjectState) -> Result<Vec<u8>, FrameError> {
        postcard::to_allocvec(&(pk, state)).map_err(|e| FrameError::Malformed(format!("object state: {e}")))
    }

    /// Decodes what [`SnapshotObject::encode_state`] made.
    pub fn decode_state(bytes: &[u8]) -> Result<(Value, ObjectState), FrameError> {
        postcard::from_bytes(bytes).map_err(|e| FrameError::Malformed(format!("object state: {e}")))
    }

    /// Its primary key and state.
    pub fn decode(&self) -> Result<(Value, ObjectState), FrameError> {
        SnapshotObject::decode_state(&self.state)
    }
}

/// A changeset as the server integrated it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerChangeset {
    /// The version the server gave it.
    pub server_version: u64,
    /// The changeset.
    pub changeset: Changeset,
}

/// Server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// The bind succeeded.
    Bound {
        /// The client's ident (new on a first bind).
        file_ident: FileIdent,
        /// The partition's latest version.
        server_version: u64,
        /// The server's schema (JSON), after what the client's added: a
        /// client resetting after a breaking schema change recovers only
        /// what fits it.
        schema: String,
    },
    /// A batch of the state snapshot, for a client that starts from
    /// nothing (streamed, so that memory stays bounded on both sides).
    Bootstrap {
        /// The objects of this batch.
        objects: Vec<SnapshotObject>,
        /// Whether this is the last batch.
        last: bool,
        /// The version the snapshot is of (in the last batch).
        server_version: u64,
        /// The salt of that version (in the last batch).
        server_version_salt: u64,
        /// The client's changesets up to this client version are in the
        /// snapshot (in the last batch).
        uploaded_through: u64,
    },
    /// Changesets in server order, and the upload acknowledgement.
    Download {
        /// The changesets.
        changesets: Vec<ServerChangeset>,
        /// The client's changesets up to this `client_version` are
        /// integrated (the upload acknowledgement).
        uploaded_through: u64,
        /// The last version sent: the last changeset's, or for a
        /// `Download` without changesets the last one sent before.
        server_version: u64,
        /// The salt of `server_version`, which the client keeps with it.
        server_version_salt: u64,
    },
    /// Everything up to the client's `Mark` request has been sent.
    Mark {
        /// The request.
        request: u64,
        /// The partition's version at that moment.
        server_version: u64,
    },
    /// Something went wrong; `action` says what the client must do.
    Error {
        /// What kind of error.
        code: ErrorCode,
        /// For people: what happened and what to do.
        message: String,
        /// For the client.
        action: Action,
    },
    /// Answers a `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
}

/// What kind of error the server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// A frame that could not be decoded.
    BadFrame,
    /// A protocol version the server does not speak.
    WrongProtocolVersion,
    /// A frame over [`MAX_FRAME_BYTES`].
    FrameTooLarge,
    /// A missing, expired or forged token.
    BadToken,
    /// The token may not use the partition.
    PartitionDenied,
    /// An upload that does not fit the schema.
    BadUpload,
    /// The client's schema conflicts with the server's (a property of
    /// another type, say).
    BadSchema,
    /// A message out of place (an upload before the bind, say).
    UnexpectedMessage,
    /// The server cannot continue the client's history.
    ClientReset,
    /// The server is shutting down or its storage is unavailable.
    Unavailable,
    /// The token expired (during the session, or before it): get a fresh
    /// one and reconnect. Since [`TOKEN_EXPIRED_VERSION`].
    TokenExpired,
}

/// What the client must do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Nothing: the session continues.
    None,
    /// Reconnect after this many milliseconds (or its own backoff, if later).
    Reconnect {
        /// The delay.
        after_ms: u64,
    },
    /// Start again from the server's state, recovering local changes.
    ClientReset {
        /// Why.
        reason: ResetReason,
        /// The last of the client's changesets the server integrated, when
        /// it still knows (a changeset whose acknowledgement was lost must
        /// not be recovered twice); `None` when its record of the client
        /// cannot be trusted (unknown, or the client's file was restored).
        acknowledged: Option<u64>,
    },
    /// Start again from the server's state; recovery is forbidden.
    ClientResetNoRecovery {
        /// Why.
        reason: ResetReason,
        /// As for [`Action::ClientReset`].
        acknowledged: Option<u64>,
    },
    /// Stop syncing: retrying cannot help (a forged token, say).
    Fatal,
}

/// Why the server cannot continue a client's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetReason {
    /// History the client needs was compacted away.
    HistoryTrimmed,
    /// The server is behind the client (restored from a backup).
    ServerRestored,
    /// The server does not know the client's ident.
    UnknownClient,
    /// The client's file is older than what the server has from it (it
    /// was restored from a backup, or copied).
    ClientRestored,
    /// Sync was terminated for the partition.
    Terminated,
    /// An operator reset this client.
    OperatorReset,
    /// The schema changed in a breaking way.
    SchemaBreaking,
}

/// A frame that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// Over the size limit.
    #[error("frame of {size} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not a Haven frame.
    #[error("not a Haven sync frame (bad header)")]
    NotAFrame,
    /// Another protocol version.
    #[error("protocol version {found} is not supported (this build speaks {supported}); upgrade the older side")]
    WrongVersion {
        /// The frame's version.
        found: u16,
        /// Ours.
        supported: u16,
    },
    /// The message inside could not be decoded (unknown message type,
    /// truncated, trailing bytes).
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl FrameError {
    /// The error code the server answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::WrongVersion { .. } => ErrorCode::WrongProtocolVersion,
            FrameError::NotAFrame | FrameError::Malformed(_) => ErrorCode::BadFrame,
        }
    }
}

/// Encodes a message as a frame.
pub fn encode<M: Serialize>(message: &M) -> Result<Vec<u8>, FrameError> {
    let mut frame = Vec::with_capacity(64);
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    let frame = postcard::to_extend(message, frame).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if frame.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { size: frame.len(), max: MAX_FRAME_BYTES });
    }
    Ok(frame)
}

/// The `Upload` frame of changesets already encoded with postcard (as the
/// client's change log keeps them): the bytes [`encode`] makes of
/// `ClientMessage::Upload`, without decoding and encoding each changeset
/// again (postcard writes a sequence as its length, then its items).
pub fn encode_upload(encoded_changesets: &[&[u8]]) -> Result<Vec<u8>, FrameError> {
    let empty = encode(&ClientMessage::Upload { changesets: vec![] })?;
    let (head, _zero_length) = empty.split_at(empty.len() - 1);
    let size = head.len() + 10 + encoded_changesets.iter().map(|c| c.len()).sum::<usize>();
    if size > MAX_UPLOAD_BYTES {
        return Err(FrameError::TooLarge { size, max: MAX_UPLOAD_BYTES });
    }
    let mut frame = Vec::with_capacity(size);
    frame.extend_from_slice(head);
    push_varint(&mut frame, encoded_changesets.len() as u64);
    for changeset in encoded_changesets {
        frame.extend_from_slice(changeset);
    }
    Ok(frame)
}

/// The `Download` frame of history as the server stores it: `(server
/// version, changeset encoded with postcard)`. The bytes [`encode`] makes
/// of `ServerMessage::Download`, without decoding and encoding each
/// changeset again. `position` is where the client stands after it.
pub fn encode_download(history: &[(u64, &[u8])], position: DownloadPosition) -> Result<Vec<u8>, FrameError> {
    let empty = encode(&ServerMessage::Download {
        changesets: vec![],
        uploaded_through: 0,
        server_version: 0,
        server_version_salt: 0,
    })?;
    // Header and message tag, then the four zeros: length, acknowledgement, version, salt.
    let head = &empty[..empty.len() - 4];
    let size = head.len() + 40 + history.iter().map(|(_, c)| 10 + c.len()).sum::<usize>();
    if size > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { size, max: MAX_FRAME_BYTES });
    }
    let mut frame = Vec::with_capacity(size);
    frame.extend_from_slice(head);
    push_varint(&mut frame, history.len() as u64);
    for (version, changeset) in history {
        push_varint(&mut frame, *version);
        frame.extend_from_slice(changeset);
    }
    push_varint(&mut frame, position.uploaded_through);
    push_varint(&mut frame, position.server_version);
    push_varint(&mut frame, position.server_version_salt);
    Ok(frame)
}

/// The fields of a `Download` after its changesets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadPosition {
    /// The upload acknowledgement.
    pub uploaded_through: u64,
    /// The last version sent.
    pub server_version: u64,
    /// Its salt.
    pub server_version_salt: u64,
}

/// Whether a client speaking protocol `version` can read `changeset`
/// (encoded as the server stores it): one from before
/// [`LIST_ELEMENTS_VERSION`] cannot read a list element instruction, one
/// from before [`COLLECTIONS_VERSION`] a set or dictionary, one from
/// before [`ELEMENT_FIELDS_VERSION`] an edit of an embedded object in a list.
pub fn readable_changeset(version: u16, changeset: &[u8]) -> bool {
    version >= PROTOCOL_VERSION
        || postcard::from_bytes::<Changeset>(changeset)
            .is_ok_and(|cs| cs.instructions.iter().all(|i| instruction_version(i) <= version))
}

/// Whether a client speaking protocol `version` can read an object's
/// encoded state: one from before [`LIST_ELEMENTS_VERSION`] cannot read
/// list element identities, one from before [`COLLECTIONS_VERSION`] sets
/// and dictionaries, one from before [`ELEMENT_FIELDS_VERSION`] the
/// fields' stamps of embedded objects in lists.
pub fn readable_state(version: u16, object: &SnapshotObject) -> bool {
    version >= PROTOCOL_VERSION || object.decode().is_ok_and(|(_, state)| state_version(&state) <= version)
}

/// The oldest protocol that can read `instruction`.
fn instruction_version(instruction: &Instruction) -> u16 {
    match instruction {
        Instruction::Create { fields, .. } => fields.iter().map(|(_, v)| value_version(v)).max().unwrap_or(0),
        Instruction::Set { value, .. } => value_version(value),
        Instruction::Increment { .. } | Instruction::Delete { .. } => 0,
        Instruction::ListAssign { elements, .. } => {
            elements.iter().map(|(_, v)| value_version(v)).fold(LIST_ELEMENTS_VERSION, u16::max)
        }
        Instruction::ListElementPut { .. } => ELEMENT_FIELDS_VERSION,
        Instruction::ListInsert { value, .. } | Instruction::ListSet { value, .. } => {
            value_version(value).max(LIST_ELEMENTS_VERSION)
        }
        Instruction::ListMove { .. } | Instruction::ListRemove { .. } => LIST_ELEMENTS_VERSION,
        Instruction::SetAdd { .. }
        | Instruction::SetRemove { .. }
        | Instruction::DictionaryPut { .. }
        | Instruction::DictionaryRemove { .. } => COLLECTIONS_VERSION,
    }
}

/// The oldest protocol that can read an object state.
fn state_version(state: &ObjectState) -> u16 {
    match state {
        ObjectState::Live { lists, .. } if lists.values().any(|l| !l.element_fields.is_empty()) => {
            ELEMENT_FIELDS_VERSION
        }
        ObjectState::Live { keyed, .. } if !keyed.is_empty() => COLLECTIONS_VERSION,
        ObjectState::Live { fields, lists, .. } => {
            let values = fields.values().map(|f| value_version(&f.value)).max().unwrap_or(0);
            values.max(if lists.is_empty() { 0 } else { LIST_ELEMENTS_VERSION })
        }
        ObjectState::Deleted { .. } => 0,
    }
}

/// The oldest protocol that can read `value`.
fn value_version(value: &Value) -> u16 {
    match value {
        Value::Set(_) | Value::Dictionary(_) | Value::Decimal128(_) => COLLECTIONS_VERSION,
        Value::List(items) => items.iter().map(value_version).max().unwrap_or(0),
        _ => 0,
    }
}

/// The `Error` frame that tells a client speaking protocol `version` that
/// it cannot be served, framed so that it can read it: an `Error` with
/// action `Fatal` has been encoded alike since
/// [`OLDEST_READABLE_ERROR_VERSION`]. Other versions get this version's
/// framing (they cannot read either).
pub fn encode_version_refusal(version: u16, message: String) -> Result<Vec<u8>, FrameError> {
    let error = ServerMessage::Error { code: ErrorCode::WrongProtocolVersion, message, action: Action::Fatal };
    let mut frame = encode(&error)?;
    if (OLDEST_READABLE_ERROR_VERSION..PROTOCOL_VERSION).contains(&version) {
        reframe(&mut frame, version);
    }
    Ok(frame)
}

/// Postcard's variable-length integer: 7 bits a byte, low bits first.
fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Decodes a frame of this version; the whole frame must be one message.
pub fn decode<M: DeserializeOwned>(frame: &[u8]) -> Result<M, FrameError> {
    decode_from(frame, PROTOCOL_VERSION..=PROTOCOL_VERSION).map(|(message, _)| message)
}

/// Decodes a client's frame of any version the server serves
/// ([`OLDEST_SERVED_VERSION`] on); returns the message and its version.
/// Every message of those versions is encoded as this version's: later
/// versions only add enum variants after the others.
pub fn decode_served<M: DeserializeOwned>(frame: &[u8]) -> Result<(M, u16), FrameError> {
    decode_from(frame, OLDEST_SERVED_VERSION..=PROTOCOL_VERSION)
}

/// Heads a server's frame with `version`: for a client speaking it (one
/// of the served versions, or a version refusal).
pub fn reframe(frame: &mut [u8], version: u16) {
    frame[2..4].copy_from_slice(&version.to_le_bytes());
}

fn decode_from<M: DeserializeOwned>(
    frame: &[u8],
    versions: std::ops::RangeInclusive<u16>,
) -> Result<(M, u16), FrameError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { size: frame.len(), max: MAX_FRAME_BYTES });
    }
    let (header, body) = frame.split_at_checked(4).ok_or(FrameError::NotAFrame)?;
    if header[..2] != MAGIC {
        return Err(FrameError::NotAFrame);
    }
    let found = u16::from_le_bytes([header[2], header[3]]);
    if !versions.contains(&found) {
        return Err(FrameError::WrongVersion { found, supported: PROTOCOL_VERSION });
    }
    match postcard::take_from_bytes(body) {
        Ok((message, [])) => Ok((message, found)),
        Ok((_, rest)) => Err(FrameError::Malformed(format!("{} bytes after the message", rest.len()))),
        Err(e) => Err(FrameError::Malformed(e.to_string())),
    }
}

/// How long a client waits before reconnect attempt `attempt` (0-based):
/// 1 s doubling up to 5 min, scaled by `jitter` in `[0, 1)` to between half
/// and all of that, so that clients cut off together do not return together.
pub fn reconnect_delay(attempt: u32, jitter: f64) -> Duration {
    let full = Duration::from_secs(1u64 << attempt.min(9)).min(Duration::from_secs(300));
    full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_core::merge::{Hlc, Instruction};
    use proptest::prelude::*;

    fn upload() -> ClientMessage {
        ClientMessage::Upload {
            changesets: vec![Changeset {
                replica: 7,
                client_version: 3,
                base_version: 2,
                hlc: Hlc { millis: 1_700_000_000_000, counter: 1 },
                instructions: vec![Instruction::Set {
                    object_type: "Dog".into(),
                    pk: 1.into(),
                    field: "age".into(),
                    value: 4.into(),
                }],
            }],
        }
    }

    /// An upload whose one value is `value`.
    fn upload_of(value: haven_core::Value) -> ClientMessage {
        let ClientMessage::Upload { mut changesets } = upload() else { unreachable!() };
        if let Instruction::Set { value: v, .. } = &mut changesets[0].instructions[0] {
            *v = value;
        }
        ClientMessage::Upload { changesets }
    }

    #[test]
    fn lists_inside_lists_are_refused_however_deep() {
        use haven_core::Value;
        let nested = encode(&upload_of(Value::List(vec![Value::List(vec![])]))).unwrap();
        // (postcard keeps no custom message: a malformed frame, like any other.)
        assert!(matches!(decode::<ClientMessage>(&nested), Err(FrameError::Malformed(_))));
        // A hostile frame: a million levels of one-element lists (two bytes
        // each: List, length 1) in place of a string. Refused at the second
        // level, not a stack overflow.
        let frame = encode(&upload_of(Value::from("MARKER"))).unwrap();
        let at = frame.windows(6).position(|w| w == b"MARKER").unwrap() - 2;
        assert_eq!(&frame[at..at + 2], &[4, 6], "String is variant 4, then the length");
        let mut hostile = frame[..at].to_vec();
        hostile.extend(std::iter::repeat_n([9u8, 1], 1_000_000).flatten());
        hostile.push(0);
        hostile.extend_from_slice(&frame[at + 8..]);
        assert!(matches!(decode::<ClientMessage>(&hostile), Err(FrameError::Malformed(_))));
        // One level still reads.
        let list = upload_of(Value::List(vec![Value::Int(1), Value::Null]));
        assert_eq!(decode::<ClientMessage>(&encode(&list).unwrap()).unwrap(), list);
    }

    #[test]
    fn round_trip() {
        let m = upload();
        assert_eq!(decode::<ClientMessage>(&encode(&m).unwrap()).unwrap(), m);
        let e = ServerMessage::Error {
            code: ErrorCode::ClientReset,
            message: "history trimmed".into(),
            action: Action::ClientReset { reason: ResetReason::HistoryTrimmed, acknowledged: Some(7) },
        };
        assert_eq!(decode::<ServerMessage>(&encode(&e).unwrap()).unwrap(), e);
    }

    #[test]
    fn bad_frames_are_named() {
        let mut frame = encode(&upload()).unwrap();
        assert_eq!(decode::<ClientMessage>(&frame[..3]).unwrap_err(), FrameError::NotAFrame);
        assert_eq!(decode::<ClientMessage>(b"XX\x01\x00\x00").unwrap_err(), FrameError::NotAFrame);
        frame[2] = 9;
        assert_eq!(
            decode::<ClientMessage>(&frame).unwrap_err(),
            FrameError::WrongVersion { found: 9, supported: PROTOCOL_VERSION }
        );
        let unknown = [b'H', b'V', PROTOCOL_VERSION as u8, 0, 99];
        let err = decode::<ClientMessage>(&unknown).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)) && err.code() == ErrorCode::BadFrame, "{err}");
        let mut trailing = encode(&upload()).unwrap();
        trailing.push(0);
        assert!(decode::<ClientMessage>(&trailing).unwrap_err().to_string().contains("after the message"));
        let huge = vec![0u8; MAX_FRAME_BYTES + 1];
        assert_eq!(decode::<ClientMessage>(&huge).unwrap_err().code(), ErrorCode::FrameTooLarge);
        let big = ClientMessage::Bind {
            token: "x".repeat(MAX_FRAME_BYTES),
            partition: "p".into(),
            file_ident: None,
            last_server_version: 0,
            last_server_version_salt: 0,
            uploaded_through: 0,
            last_client_version: 0,
            schema: String::new(),
            resetting: false,
            request_reset: false,
        };
        assert!(matches!(encode(&big), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn an_upload_of_encoded_changesets_is_the_same_frame() {
        let ClientMessage::Upload { changesets } = upload() else { unreachable!() };
        for count in [0, 1, 3, 200] {
            let many: Vec<Changeset> =
                (0..count).map(|i| Changeset { client_version: i, ..changesets[0].clone() }).collect();
            let encoded: Vec<Vec<u8>> = many.iter().map(|c| postcard::to_allocvec(c).unwrap()).collect();
            let raw = encode_upload(&encoded.iter().map(Vec::as_slice).collect::<Vec<_>>()).unwrap();
            assert!(raw == encode(&ClientMessage::Upload { changesets: many }).unwrap(), "{count} changesets");
        }
    }

    #[test]
    fn a_download_of_stored_history_is_the_same_frame() {
        let ClientMessage::Upload { changesets } = upload() else { unreachable!() };
        for (count, ack, version) in [(0, 0, 0), (1, 5, 7), (3, 300, 70_000), (200, u64::MAX, u64::MAX)] {
            let history: Vec<ServerChangeset> = (0..count)
                .map(|i| ServerChangeset {
                    server_version: version.saturating_sub(i),
                    changeset: Changeset { client_version: i, ..changesets[0].clone() },
                })
                .collect();
            let stored: Vec<(u64, Vec<u8>)> =
                history.iter().map(|h| (h.server_version, postcard::to_allocvec(&h.changeset).unwrap())).collect();
            let position =
                DownloadPosition { uploaded_through: ack, server_version: version, server_version_salt: version ^ 7 };
            let raw =
                encode_download(&stored.iter().map(|(v, c)| (*v, c.as_slice())).collect::<Vec<_>>(), position).unwrap();
            let message = ServerMessage::Download {
                changesets: history,
                uploaded_through: ack,
                server_version: version,
                server_version_salt: version ^ 7,
            };
            assert!(raw == encode(&message).unwrap(), "{count} changesets");
        }
    }

    #[test]
    fn a_client_of_an_older_version_can_read_why_it_is_refused() {
        let frame = encode_version_refusal(3, "update".into()).unwrap();
        // How protocol 3 encoded `Error { WrongProtocolVersion, "update", Fatal }`:
        // variant 4, code 1, the message, action 4.
        assert_eq!(frame, [b"HV\x03\x00\x04\x01\x06".as_slice(), b"update", &[4]].concat());
        let ours = encode_version_refusal(1, "update".into()).unwrap();
        assert_eq!(u16::from_le_bytes([ours[2], ours[3]]), PROTOCOL_VERSION, "older than 2: our framing");
        assert!(matches!(decode::<ServerMessage>(&ours).unwrap(), ServerMessage::Error { action: Action::Fatal, .. }));
    }

    #[test]
    fn backoff_doubles_to_five_minutes_with_jitter() {
        assert_eq!(reconnect_delay(0, 0.999_999).as_millis(), 999);
        assert_eq!(reconnect_delay(0, 0.0), Duration::from_millis(500));
        assert_eq!(reconnect_delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(reconnect_delay(20, 0.0), Duration::from_secs(150));
        assert!(reconnect_delay(20, 1.0) <= Duration::from_secs(300));
    }

    proptest! {
        #[test]
        fn garbage_is_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut frame = b"HV".to_vec();
            frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
            frame.extend(bytes);
            let _ = decode::<ClientMessage>(&frame);
            let _ = decode::<ServerMessage>(&frame);
        }
    }
}
