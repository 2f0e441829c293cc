//! One frame of each message, pinned byte for byte: an encoding that
//! changes by accident (a field added, reordered, a variant inserted)
//! fails here before it reaches a peer. `frames/v<N>.txt` holds protocol
//! N's frames, one `name hex` per line. A new protocol version adds its
//! own file (`HAVEN_WRITE_FRAMES=1` writes it once) and keeps the older
//! ones, whose frames it must refuse naming both versions.

use haven_core::merge::{apply, Changeset, ElementId, Field, Hlc, Instruction, ObjectState, Stamp, Writer};
use haven_core::Value;
use haven_sync::protocol::{
    self, Action, ClientMessage, ErrorCode, FileIdent, ResetReason, ServerChangeset, ServerMessage, SnapshotObject,
    PROTOCOL_VERSION,
};
use std::path::PathBuf;

fn changeset() -> Changeset {
    Changeset {
        replica: 7,
        client_version: 3,
        base_version: 2,
        hlc: Hlc { millis: 1_700_000_000_000, counter: 1 },
        instructions: vec![
            Instruction::Create {
                object_type: "Dog".into(),
                pk: 1.into(),
                fields: vec![("_id".into(), 1.into()), ("name".into(), "Rex".into())],
            },
            Instruction::Set {
                object_type: "Dog".into(),
                pk: 1.into(),
                field: "tags".into(),
                value: Value::List(vec!["a".into()]),
            },
            Instruction::Increment { object_type: "Dog".into(), pk: 1.into(), field: "age".into(), delta: 2.into() },
            Instruction::Delete { object_type: "Dog".into(), pk: 2.into() },
        ],
    }
}

/// The id of the `seq`th element the pinned changesets add.
fn element_id(seq: u32) -> ElementId {
    ElementId { origin: 0x0123_4567_89ab_cdef, hlc: Hlc { millis: 1_700_000_000_000, counter: 1 }, seq }
}

/// A changeset of every list element instruction (protocol 6 onwards).
fn list_changeset() -> Changeset {
    let id = element_id;
    let (object_type, pk, field) = (String::from("Dog"), Value::from(1), String::from("tags"));
    Changeset {
        instructions: vec![
            Instruction::ListAssign {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: field.clone(),
                elements: vec![(id(0), "a".into())],
            },
            Instruction::ListInsert {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: field.clone(),
                after: Some(id(0)),
                id: id(1),
                value: "b".into(),
            },
            Instruction::ListSet {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: field.clone(),
                id: id(1),
                value: "c".into(),
            },
            Instruction::ListMove {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: field.clone(),
                id: id(1),
                after: None,
            },
            Instruction::ListRemove { object_type, pk, field, id: id(0) },
        ],
        ..changeset()
    }
}

/// A changeset of every set and dictionary instruction, whole values of
/// both, and a decimal (protocol 7 onwards).
fn collections_changeset() -> Changeset {
    let (object_type, pk) = (String::from("Dog"), Value::from(1));
    let (colors, scores) = (String::from("colors"), String::from("scores"));
    Changeset {
        instructions: vec![
            Instruction::Set {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: colors.clone(),
                value: Value::Set(vec!["brown".into()]),
            },
            Instruction::Set {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: scores.clone(),
                value: Value::Dictionary([("agility".to_owned(), Value::from(5))].into()),
            },
            Instruction::SetAdd {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: colors.clone(),
                value: "white".into(),
            },
            Instruction::SetRemove {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: colors,
                value: "brown".into(),
            },
            Instruction::DictionaryPut {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: scores.clone(),
                key: "speed".into(),
                value: 3.into(),
            },
            Instruction::DictionaryRemove {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: scores,
                key: "agility".into(),
            },
            Instruction::Set {
                object_type,
                pk,
                field: "price".into(),
                value: Value::Decimal128("12.50".parse().unwrap()),
            },
        ],
        ..changeset()
    }
}

/// A changeset that edits a field of an embedded object in a list
/// (protocol 8 onwards).
fn element_fields_changeset() -> Changeset {
    let id = element_id;
    let (object_type, pk, field) = (String::from("Dog"), Value::from(1), String::from("homes"));
    let home = |city: &str| Value::Dictionary([("city".to_owned(), Value::from(city))].into());
    Changeset {
        instructions: vec![
            Instruction::ListAssign {
                object_type: object_type.clone(),
                pk: pk.clone(),
                field: field.clone(),
                elements: vec![(id(0), home("Oslo")), (id(1), home("Rome"))],
            },
            Instruction::ListElementPut { object_type, pk, field, id: id(0), key: "zip".into(), value: 150.into() },
        ],
        ..changeset()
    }
}

/// The state `changeset`'s create and then `later` leave.
fn snapshot_after(later: &Changeset) -> SnapshotObject {
    let pk = Value::from(1);
    let writer = Writer { version: 4, base_version: 3, hlc: Hlc { millis: 1_700_000_000_001, counter: 0 }, replica: 7 };
    let mut state = None;
    for i in changeset().instructions.iter().take(1).chain(&later.instructions) {
        state = apply(state.as_ref(), i, &writer).state;
    }
    let state = state.expect("created");
    SnapshotObject {
        object_type: "Dog".into(),
        key: haven_core::key::to_key(pk.as_ref().unwrap()),
        state: SnapshotObject::encode_state(&pk, &state).unwrap(),
    }
}

/// The state `list_changeset` leaves after `changeset`'s create.
fn list_snapshot_object() -> SnapshotObject {
    snapshot_after(&list_changeset())
}

fn snapshot_object() -> SnapshotObject {
    let stamp = Stamp { version: 4, hlc: Hlc { millis: 1_700_000_000_001, counter: 0 }, replica: 7 };
    let fields = [("_id", Value::from(1)), ("blob", Value::Data(vec![1, 2])), ("when", Value::Date(5))]
        .into_iter()
        .map(|(n, value)| (n.to_owned(), Field { value, stamp }))
        .collect();
    let state = ObjectState::Live { fields, lists: Default::default(), keyed: Default::default(), deleted_at: None };
    let pk = Value::from(1);
    SnapshotObject {
        object_type: "Dog".into(),
        key: haven_core::key::to_key(pk.as_ref().unwrap()),
        state: SnapshotObject::encode_state(&pk, &state).unwrap(),
    }
}

/// Every message, named.
fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let ident = FileIdent { ident: 12, salt: 0x1234_5678_9abc_def0 };
    let client = [
        (
            "Bind",
            ClientMessage::Bind {
                token: "token".into(),
                partition: "p".into(),
                file_ident: Some(ident),
                last_server_version: 9,
                last_server_version_salt: 0xfeed,
                uploaded_through: 3,
                last_client_version: 4,
                schema: "[]".into(),
                resetting: false,
                request_reset: true,
            },
        ),
        ("Upload", ClientMessage::Upload { changesets: vec![changeset()] }),
        ("UploadListElements", ClientMessage::Upload { changesets: vec![list_changeset()] }),
        ("UploadCollections", ClientMessage::Upload { changesets: vec![collections_changeset()] }),
        ("UploadElementFields", ClientMessage::Upload { changesets: vec![element_fields_changeset()] }),
        ("Mark", ClientMessage::Mark { request: 5 }),
        ("Ping", ClientMessage::Ping { nonce: 6 }),
    ];
    let server = [
        ("Bound", ServerMessage::Bound { file_ident: ident, server_version: 9, schema: "[]".into() }),
        (
            "Bootstrap",
            ServerMessage::Bootstrap {
                objects: vec![snapshot_object()],
                last: true,
                server_version: 9,
                server_version_salt: 0xbeef,
                uploaded_through: 3,
            },
        ),
        (
            "Download",
            ServerMessage::Download {
                changesets: vec![ServerChangeset { server_version: 10, changeset: changeset() }],
                uploaded_through: 3,
                server_version: 10,
                server_version_salt: 0xcafe,
            },
        ),
        (
            "BootstrapListElements",
            ServerMessage::Bootstrap {
                objects: vec![list_snapshot_object()],
                last: true,
                server_version: 9,
                server_version_salt: 0xbeef,
                uploaded_through: 3,
            },
        ),
        (
            "BootstrapCollections",
            ServerMessage::Bootstrap {
                objects: vec![snapshot_after(&collections_changeset())],
                last: true,
                server_version: 9,
                server_version_salt: 0xbeef,
                uploaded_through: 3,
            },
        ),
        (
            "BootstrapElementFields",
            ServerMessage::Bootstrap {
                objects: vec![snapshot_after(&element_fields_changeset())],
                last: true,
                server_version: 9,
                server_version_salt: 0xbeef,
                uploaded_through: 3,
            },
        ),
        ("MarkAnswer", ServerMessage::Mark { request: 5, server_version: 10 }),
        (
            "Error",
            ServerMessage::Error {
                code: ErrorCode::ClientReset,
                message: "reset".into(),
                action: Action::ClientReset { reason: ResetReason::ServerRestored, acknowledged: Some(3) },
            },
        ),
        (
            "ErrorTokenExpired",
            ServerMessage::Error {
                code: ErrorCode::TokenExpired,
                message: "expired".into(),
                action: Action::Reconnect { after_ms: 0 },
            },
        ),
        ("Pong", ServerMessage::Pong { nonce: 6 }),
    ];
    let mut all: Vec<(&str, Vec<u8>)> = client.into_iter().map(|(n, m)| (n, protocol::encode(&m).unwrap())).collect();
    all.extend(server.into_iter().map(|(n, m)| (n, protocol::encode(&m).unwrap())));
    all
}

/// Whether the pinned frame `name` is a client's message.
fn from_client(name: &str) -> bool {
    matches!(
        name,
        "Bind" | "Upload" | "UploadListElements" | "UploadCollections" | "UploadElementFields" | "Mark" | "Ping"
    )
}

fn file(version: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/frames/v{version}.txt"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn pinned(version: u16) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(file(version)).unwrap_or_else(|e| panic!("{}: {e}", file(version).display()));
    text.lines().map(|l| l.split_once(' ').expect("name hex")).map(|(n, h)| (n.to_owned(), unhex(h))).collect()
}

#[test]
fn every_message_encodes_as_pinned_and_decodes_back() {
    let path = file(PROTOCOL_VERSION);
    if std::env::var("HAVEN_WRITE_FRAMES").is_ok() && !path.exists() {
        let text: String = messages().iter().map(|(n, f)| format!("{n} {}\n", hex(f))).collect();
        std::fs::write(&path, text).unwrap();
    }
    let pinned = pinned(PROTOCOL_VERSION);
    let made = messages();
    assert_eq!(pinned.len(), made.len(), "one frame per message");
    for ((name, frame), (made_name, made_frame)) in pinned.iter().zip(&made) {
        assert_eq!(name, made_name);
        assert!(frame == made_frame, "{name}: the encoding changed; a change needs a new protocol version");
        let decoded_again = match from_client(name) {
            true => protocol::encode(&protocol::decode::<ClientMessage>(frame).unwrap()),
            false => protocol::encode(&protocol::decode::<ServerMessage>(frame).unwrap()),
        };
        assert!(decoded_again.unwrap() == *frame, "{name} decodes to the same message");
    }
}

/// The server serves clients of every version from
/// `OLDEST_SERVED_VERSION`: each of their pinned frames must decode as
/// the same message today, and today's answers, re-framed, must read as
/// theirs.
#[test]
fn every_frame_of_a_served_older_version_decodes_as_the_same_message() {
    for version in protocol::OLDEST_SERVED_VERSION..PROTOCOL_VERSION {
        for (name, frame) in pinned(version) {
            let again = match from_client(&name) {
                true => {
                    let (message, found) = protocol::decode_served::<ClientMessage>(&frame).unwrap();
                    assert_eq!(found, version);
                    protocol::encode(&message)
                }
                false => protocol::encode(&protocol::decode_served::<ServerMessage>(&frame).unwrap().0),
            };
            let mut again = again.unwrap();
            protocol::reframe(&mut again, version);
            assert!(again == frame, "v{version} {name}: re-encoded as today's and re-framed, the bytes differ");
        }
    }
    let older = [b'H', b'V', (protocol::OLDEST_SERVED_VERSION - 1) as u8, 0, 3, 1];
    assert!(matches!(protocol::decode_served::<ClientMessage>(&older), Err(protocol::FrameError::WrongVersion { .. })));
}

#[test]
fn a_client_from_before_list_elements_is_never_sent_them() {
    let stored = |cs: &Changeset| postcard::to_allocvec(cs).unwrap();
    let old = protocol::LIST_ELEMENTS_VERSION - 1;
    assert!(protocol::readable_changeset(old, &stored(&changeset())));
    assert!(!protocol::readable_changeset(old, &stored(&list_changeset())));
    assert!(protocol::readable_changeset(protocol::LIST_ELEMENTS_VERSION, &stored(&list_changeset())));
    assert!(protocol::readable_state(old, &snapshot_object()));
    assert!(!protocol::readable_state(old, &list_snapshot_object()));
}

#[test]
fn a_client_from_before_collections_is_never_sent_them() {
    let stored = |cs: &Changeset| postcard::to_allocvec(cs).unwrap();
    let old = protocol::COLLECTIONS_VERSION - 1;
    assert!(protocol::readable_changeset(old, &stored(&list_changeset())));
    assert!(!protocol::readable_changeset(old, &stored(&collections_changeset())));
    let whole_values = collections_changeset().instructions;
    for whole_value_only in [&whole_values[0], &whole_values[1], &whole_values[6]] {
        let cs = Changeset { instructions: vec![whole_value_only.clone()], ..changeset() };
        assert!(!protocol::readable_changeset(old, &stored(&cs)), "a set or dictionary value: {whole_value_only:?}");
    }
    assert!(protocol::readable_changeset(protocol::COLLECTIONS_VERSION, &stored(&collections_changeset())));
    assert!(protocol::readable_state(old, &list_snapshot_object()));
    assert!(!protocol::readable_state(old, &snapshot_after(&collections_changeset())));
    let whole_only = Changeset { instructions: collections_changeset().instructions[..2].to_vec(), ..changeset() };
    assert!(!protocol::readable_state(old, &snapshot_after(&whole_only)), "values, without entries");
    let decimal_in_a_list = Changeset {
        instructions: vec![Instruction::ListAssign {
            object_type: "Dog".into(),
            pk: 1.into(),
            field: "prices".into(),
            elements: vec![(
                ElementId { origin: 1, hlc: Hlc::default(), seq: 0 },
                Value::Decimal128("1.5".parse().unwrap()),
            )],
        }],
        ..changeset()
    };
    assert!(!protocol::readable_changeset(old, &stored(&decimal_in_a_list)), "a decimal inside a list");
}

#[test]
fn a_client_from_before_element_fields_is_never_sent_them() {
    let stored = |cs: &Changeset| postcard::to_allocvec(cs).unwrap();
    let old = protocol::ELEMENT_FIELDS_VERSION - 1;
    let edits = element_fields_changeset().instructions;
    let only = |i: &Instruction| stored(&Changeset { instructions: vec![i.clone()], ..changeset() });
    assert!(protocol::readable_changeset(old, &only(&edits[0])), "a list of embedded objects written whole");
    assert!(!protocol::readable_changeset(old, &only(&edits[1])), "a field edit");
    let home = Value::Dictionary([("city".to_owned(), Value::from("Milan"))].into());
    let (object_type, pk, field) = (String::from("Dog"), Value::from(1), String::from("homes"));
    let Instruction::ListElementPut { id, .. } = edits[1] else { panic!("a field edit") };
    let whole = Instruction::ListSet { object_type, pk, field, id, value: home };
    assert!(protocol::readable_changeset(old, &only(&whole)), "an element written whole means what it meant");
    assert!(protocol::readable_changeset(protocol::ELEMENT_FIELDS_VERSION, &stored(&element_fields_changeset())));
    let whole_only = Changeset { instructions: edits[..1].to_vec(), ..changeset() };
    assert!(protocol::readable_state(old, &snapshot_after(&whole_only)));
    assert!(!protocol::readable_state(old, &snapshot_after(&element_fields_changeset())), "fields with stamps");
}
