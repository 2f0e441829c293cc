//! `haven serve` over a real WebSocket, spoken to frame by frame: every
//! bad input is answered with an error and closes that connection only,
//! stores nothing, and never leaks another partition's data.

use futures_util::{SinkExt, StreamExt};
use haven_core::merge::{Changeset, Hlc, Instruction};
use haven_core::Value;
use haven_server::{Authenticator, EmbeddedStorage, ServeError, Server};
use haven_sync::protocol::{self, ClientMessage, ErrorCode, FileIdent, ServerMessage, MAX_FRAME_BYTES};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?","tags":"string[]","colors":"string<>","homes":"Home[]"}},
  {"name":"Home","embedded":true,"properties":{"city":"string"}}]"#;
const SECRET: &[u8] = b"test secret";

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Client {
    ws: Socket,
    /// Every byte the server sent, to check what it never sends.
    received: Vec<u8>,
    /// The salt of each server version this client was sent.
    salts: std::collections::BTreeMap<u64, u64>,
}

impl Client {
    async fn connect(server: &Server) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{}/sync", server.url())).await.unwrap();
        Client { ws, received: Vec::new(), salts: Default::default() }
    }

    async fn send(&mut self, message: &ClientMessage) {
        self.send_bytes(protocol::encode(message).unwrap()).await;
    }

    async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    /// The next message, `None` once the server closed.
    async fn receive(&mut self) -> Option<ServerMessage> {
        loop {
            match tokio::time::timeout(Duration::from_secs(30), self.ws.next()).await.expect("an answer") {
                Some(Ok(Message::Binary(bytes))) => {
                    self.received.extend_from_slice(&bytes);
                    let message = protocol::decode(&bytes).unwrap();
                    match &message {
                        ServerMessage::Download { changesets, server_version, server_version_salt, .. }
                            if !changesets.is_empty() =>
                        {
                            self.salts.insert(*server_version, *server_version_salt);
                        }
                        ServerMessage::Bootstrap { last: true, server_version, server_version_salt, .. } => {
                            self.salts.insert(*server_version, *server_version_salt);
                        }
                        _ => {}
                    }
                    return Some(message);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Expects an error with `code`, then the connection closing.
    async fn refused(&mut self, code: ErrorCode) -> String {
        let message = loop {
            match self.receive().await {
                Some(ServerMessage::Error { code: got, message, .. }) => {
                    assert_eq!(got, code, "{message}");
                    break message;
                }
                Some(ServerMessage::Download { changesets, .. }) => assert!(changesets.is_empty()),
                other => panic!("expected {code:?}, got {other:?}"),
            }
        };
        assert_eq!(self.receive().await, None, "the connection closes after an error");
        message
    }

    /// `(version, its salt)`, as this client was sent them.
    fn held(&self, version: u64) -> (u64, u64) {
        (version, self.salts[&version])
    }

    async fn bind(server: &Server, token: &str, partition: &str) -> (Client, FileIdent, u64) {
        let mut client = Client::connect(server).await;
        client.send(&bind(token, partition)).await;
        match client.receive().await {
            Some(ServerMessage::Bound { file_ident, server_version, .. }) => (client, file_ident, server_version),
            other => panic!("expected Bound, got {other:?}"),
        }
    }

    /// Waits for the end of a new file's bootstrap.
    async fn bootstrapped(&mut self) {
        loop {
            match self.receive().await {
                Some(ServerMessage::Bootstrap { last: true, .. }) => return,
                Some(ServerMessage::Bootstrap { .. }) => continue,
                other => panic!("expected a bootstrap, got {other:?}"),
            }
        }
    }

    /// Waits for the acknowledgement of `client_version`.
    async fn acknowledged(&mut self, client_version: u64) {
        loop {
            match self.receive().await {
                Some(ServerMessage::Download { uploaded_through, .. }) if uploaded_through >= client_version => return,
                Some(ServerMessage::Download { .. }) => continue,
                other => panic!("expected an acknowledgement, got {other:?}"),
            }
        }
    }
}

fn bind(token: &str, partition: &str) -> ClientMessage {
    ClientMessage::Bind {
        token: token.into(),
        partition: partition.into(),
        file_ident: None,
        last_server_version: 0,
        last_server_version_salt: 0,
        uploaded_through: 0,
        last_client_version: 0,
        schema: SCHEMA.into(),
        resetting: false,
        request_reset: false,
    }
}

/// Binds an existing file that says where it stands: the last server
/// version it integrated with its salt, the last of its changesets
/// acknowledged to it, and the last it wrote.
async fn rebind(server: &Server, ident: FileIdent, held: (u64, u64), acknowledged: u64, written: u64) -> Client {
    rebind_with(server, ident, held, acknowledged, written, false).await
}

async fn rebind_with(
    server: &Server,
    ident: FileIdent,
    (last_server_version, last_server_version_salt): (u64, u64),
    acknowledged: u64,
    written: u64,
    request_reset: bool,
) -> Client {
    let mut client = Client::connect(server).await;
    let ClientMessage::Bind { token, partition, schema, .. } = bind("", "p") else { unreachable!() };
    client
        .send(&ClientMessage::Bind {
            token,
            partition,
            file_ident: Some(ident),
            last_server_version,
            last_server_version_salt,
            uploaded_through: acknowledged,
            last_client_version: written,
            schema,
            resetting: false,
            request_reset,
        })
        .await;
    client
}

fn upload(client_version: u64, instruction: Instruction) -> ClientMessage {
    let hlc = Hlc { millis: 1, counter: 0 };
    ClientMessage::Upload {
        changesets: vec![Changeset {
            replica: 0,
            client_version,
            base_version: 0,
            hlc,
            instructions: vec![instruction],
        }],
    }
}

fn create(id: i64) -> Instruction {
    Instruction::Create {
        object_type: "Dog".into(),
        pk: id.into(),
        fields: vec![("_id".into(), id.into()), ("name".into(), "Rex".into())],
    }
}

async fn start(dir: &std::path::Path, auth: Authenticator) -> Server {
    let storage = Arc::new(EmbeddedStorage::open(&dir.join("server")).unwrap());
    Server::start(storage, auth, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn token(sub: &str, partitions: &[&str], exp_from_now: i64, secret: &[u8]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = serde_json::json!({"sub": sub, "partitions": partitions, "exp": now + exp_from_now});
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).unwrap()
}

/// The partition's version, as a new client's bind reports it.
async fn version(server: &Server, token: &str, partition: &str) -> u64 {
    Client::bind(server, token, partition).await.2
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let (mut bystander, _, _) = Client::bind(&server, "", "p").await;

    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (b"not a haven frame".to_vec(), ErrorCode::BadFrame),
        (vec![b'H', b'V', protocol::PROTOCOL_VERSION as u8, 0, 99], ErrorCode::BadFrame), // unknown message type
        (
            [b"HV\x09\x00".as_slice(), &protocol::encode(&bind("", "p")).unwrap()[4..]].concat(),
            ErrorCode::WrongProtocolVersion,
        ),
    ];
    for (frame, code) in cases {
        let mut bad = Client::connect(&server).await;
        bad.send_bytes(frame).await;
        let message = bad.refused(code).await;
        assert!(!message.is_empty());
    }
    // An oversized frame: the server stops reading at its header, answers
    // and closes. The client may still be writing the rest, so the
    // kernel can reset the connection before the answer is read.
    let mut huge = Client::connect(&server).await;
    let mut frame = protocol::encode(&ClientMessage::Ping { nonce: 1 }).unwrap();
    frame.resize(MAX_FRAME_BYTES + 1, 0);
    if huge.ws.send(Message::Binary(frame.into())).await.is_ok() {
        match huge.receive().await {
            Some(ServerMessage::Error { code, .. }) => assert_eq!(code, ErrorCode::FrameTooLarge),
            None => {}
            other => panic!("{other:?}"),
        }
    }
    // Bad frames after a bind, too.
    let (mut bound, _, _) = Client::bind(&server, "", "p").await;
    bound.send_bytes(vec![b'H', b'V', protocol::PROTOCOL_VERSION as u8, 0, 200, 1, 2]).await;
    bound.refused(ErrorCode::BadFrame).await;
    // Text frames and out-of-order messages.
    let mut text = Client::connect(&server).await;
    text.ws.send(Message::Text("hello".into())).await.unwrap();
    text.refused(ErrorCode::BadFrame).await;
    let mut early = Client::connect(&server).await;
    early.send(&upload(1, create(1))).await;
    early.refused(ErrorCode::UnexpectedMessage).await;

    // The bystander was never disturbed.
    bystander.send(&upload(1, create(1))).await;
    bystander.acknowledged(1).await;
    assert_eq!(version(&server, "", "p").await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn uploads_that_do_not_fit_the_schema_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let set = |field: &str, value: haven_core::Value| Instruction::Set {
        object_type: "Dog".into(),
        pk: 1.into(),
        field: field.into(),
        value,
    };
    let cases = [
        (Instruction::Create { object_type: "Cat".into(), pk: 1.into(), fields: vec![] }, "unknown object type 'Cat'"),
        (set("colour", "brown".into()), "colour"),
        (set("age", "old".into()), "age"),
        (Instruction::Create { object_type: "Dog".into(), pk: "one".into(), fields: vec![] }, "_id"),
    ];
    for (instruction, named) in cases {
        let (mut client, _, _) = Client::bind(&server, "", "p").await;
        // A good changeset first: the whole upload is refused, not a prefix.
        let good = Changeset {
            replica: 0,
            client_version: 1,
            base_version: 0,
            hlc: Hlc { millis: 1, counter: 0 },
            instructions: vec![create(1)],
        };
        let bad = Changeset { client_version: 2, instructions: vec![instruction], ..good.clone() };
        client.send(&ClientMessage::Upload { changesets: vec![good, bad] }).await;
        let message = client.refused(ErrorCode::BadUpload).await;
        assert!(message.contains(named), "{message} names {named}");
    }
    assert_eq!(version(&server, "", "p").await, 0, "nothing of a refused upload is stored");

    // A schema that conflicts with the server's is refused at bind.
    let mut client = Client::connect(&server).await;
    let conflicting = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":"string"}}]"#;
    let ClientMessage::Bind { token, partition, file_ident, last_server_version, uploaded_through, .. } = bind("", "p")
    else {
        unreachable!()
    };
    let schema = conflicting.into();
    client
        .send(&ClientMessage::Bind {
            token,
            partition,
            file_ident,
            last_server_version,
            last_server_version_salt: 0,
            uploaded_through,
            last_client_version: 0,
            schema,
            resetting: false,
            request_reset: false,
        })
        .await;
    assert!(client.refused(ErrorCode::BadSchema).await.contains("age"));
    server.shutdown().await;
}

#[tokio::test]
async fn uploads_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let (mut client, ident, _) = Client::bind(&server, "", "p").await;
    client.send(&upload(1, create(1))).await;
    client.acknowledged(1).await;
    let held = client.held(1);
    drop(client);
    // The same file reconnects and uploads the same changeset again (its
    // acknowledgement was lost, say): it is not integrated twice.
    let mut again = rebind(&server, ident, held, 1, 1).await;
    assert!(matches!(again.receive().await, Some(ServerMessage::Bound { server_version: 1, .. })));
    again.send(&upload(1, create(1))).await;
    again.acknowledged(1).await;
    assert_eq!(version(&server, "", "p").await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn tokens_are_checked_and_partitions_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::jwt(SECRET)).await;
    let ann = token("ann", &["a"], 3600, SECRET);
    let (mut writer, _, _) = Client::bind(&server, &ann, "a").await;
    writer.send(&upload(1, create(1))).await;
    writer.acknowledged(1).await;

    let cases = [
        (String::new(), "a", ErrorCode::BadToken, "no token"),
        ("not.a.jwt".to_owned(), "a", ErrorCode::BadToken, "not valid"),
        (token("ann", &["a"], -3600, SECRET), "a", ErrorCode::TokenExpired, "expired"),
        (token("ann", &["a"], 3600, b"another secret"), "a", ErrorCode::BadToken, "not valid"),
        (token("bob", &["b"], 3600, SECRET), "a", ErrorCode::PartitionDenied, "may not sync partition 'a'"),
    ];
    for (token, partition, code, says) in cases {
        let mut client = Client::connect(&server).await;
        client.send(&bind(&token, partition)).await;
        // `refused` fails on anything but the error: no Bound, no data.
        let message = client.refused(code).await;
        assert!(message.contains(says), "{message}");
        assert!(!message.contains(&token) || token.is_empty(), "the token is never echoed");
    }
    // Bob's partition holds nothing of Ann's.
    let (mut bob, _, version) = Client::bind(&server, &token("bob", &["b"], 3600, SECRET), "b").await;
    assert_eq!(version, 0);
    match bob.receive().await {
        Some(ServerMessage::Download { changesets, .. }) => assert!(changesets.is_empty()),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

/// Whether `haystack` holds `needle` anywhere.
fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn create_named(id: i64, name: &str) -> Instruction {
    Instruction::Create {
        object_type: "Dog".into(),
        pk: id.into(),
        fields: vec![("_id".into(), id.into()), ("name".into(), name.into())],
    }
}

/// Not a byte of another partition reaches a client: not in its
/// bootstrap, its downloads, its errors, a bind it may not make, another
/// partition's termination, or its own reset and new bootstrap.
#[tokio::test]
async fn no_byte_of_another_partition_reaches_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(EmbeddedStorage::open(&dir.path().join("server")).unwrap());
    let listen = "127.0.0.1:0".parse().unwrap();
    let server = Server::start_with_admin(storage, Authenticator::jwt(SECRET), listen, Some("admin-secret".into()))
        .await
        .unwrap();
    let (ann_token, bob_token) = (token("ann", &["a"], 3600, SECRET), token("bob", &["b"], 3600, SECRET));
    let (mut bob, _, _) = Client::bind(&server, &bob_token, "b").await;
    bob.send(&upload(1, create_named(1, "BOB-ONLY 1"))).await;
    bob.acknowledged(1).await;

    let (mut ann, ann_ident, _) = Client::bind(&server, &ann_token, "a").await;
    ann.send(&upload(1, create_named(1, "ANN-ONLY 1"))).await;
    ann.acknowledged(1).await;
    // Bob writes while Ann is connected; Ann's next download is her own.
    bob.send(&upload(2, create_named(2, "BOB-ONLY 2"))).await;
    bob.acknowledged(2).await;
    ann.send(&upload(2, create_named(2, "ANN-ONLY 2"))).await;
    ann.acknowledged(2).await;
    // An upload that does not fit the schema: the error names Ann's own.
    ann.send(&upload(
        3,
        Instruction::Set { object_type: "Dog".into(), pk: 1.into(), field: "nope".into(), value: 1.into() },
    ))
    .await;
    assert!(matches!(next_non_download(&mut ann).await, Some(ServerMessage::Error { .. })));
    let mut seen = std::mem::take(&mut ann.received);

    // Ann's token for Bob's partition.
    let mut sneaky = Client::connect(&server).await;
    sneaky.send(&bind(&ann_token, "b")).await;
    sneaky.refused(ErrorCode::PartitionDenied).await;
    seen.extend(sneaky.received);

    // Bob's partition terminated: Ann hears nothing of it.
    let (mut ann, _, _) = Client::bind(&server, &ann_token, "a").await;
    ann.bootstrapped().await;
    let (status, _) = http(&server, "POST", "/admin/v1/partitions/b/terminate", Some("admin-secret")).await;
    assert_eq!(status, 200);
    assert!(matches!(
        next_non_download(&mut bob).await,
        Some(ServerMessage::Error { code: ErrorCode::ClientReset, .. })
    ));
    ann.send(&upload(1, create_named(3, "ANN-ONLY 3"))).await;
    ann.acknowledged(1).await;
    seen.extend(std::mem::take(&mut ann.received));

    // Ann reset: her error, and the new bootstrap, are hers alone.
    let (status, _) =
        http(&server, "POST", &format!("/admin/v1/clients/{}/reset", ann_ident.ident), Some("admin-secret")).await;
    assert_eq!(status, 200);
    let mut old = Client::connect(&server).await;
    let ClientMessage::Bind { schema, .. } = bind("", "a") else { unreachable!() };
    old.send(&ClientMessage::Bind {
        token: ann_token.clone(),
        partition: "a".into(),
        file_ident: Some(ann_ident),
        last_server_version: 3,
        last_server_version_salt: 0,
        uploaded_through: 2,
        last_client_version: 3,
        schema,
        resetting: false,
        request_reset: false,
    })
    .await;
    old.refused(ErrorCode::ClientReset).await;
    seen.extend(old.received);
    let (mut fresh, _, version) = Client::bind(&server, &ann_token, "a").await;
    assert_eq!(version, 3);
    fresh.bootstrapped().await;
    seen.extend(fresh.received);

    assert!(holds(&seen, "ANN-ONLY 3"), "the check sees what Ann was sent");
    assert!(!holds(&seen, "BOB-ONLY"), "a byte of Bob's partition reached Ann");
    assert!(!holds(&bob.received, "ANN-ONLY"), "a byte of Ann's partition reached Bob");
    server.shutdown().await;
}

/// A bound client that goes silent (a half-open connection) is
/// disconnected after the silence allowed; one that pings stays.
#[tokio::test]
async fn a_silent_client_is_disconnected_and_a_pinging_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(EmbeddedStorage::open(&dir.path().join("server")).unwrap());
    let options = haven_server::ServerOptions {
        client_silence: Some(Duration::from_millis(300)),
        ..haven_server::ServerOptions::default()
    };
    let server =
        Server::start_with_options(storage, Authenticator::Dev, "127.0.0.1:0".parse().unwrap(), options).await.unwrap();
    let (mut silent, _, _) = Client::bind(&server, "", "p").await;
    let (mut pinging, _, _) = Client::bind(&server, "", "p").await;
    // The pinging client pings back to back until the silent one is closed.
    let mut pongs = 0;
    loop {
        tokio::select! {
            message = silent.receive() => match message {
                None => break,
                Some(ServerMessage::Download { .. }) => {}
                other => panic!("the silent client got {other:?}"),
            },
            () = async {
                pinging.send(&ClientMessage::Ping { nonce: 0 }).await;
                loop {
                    match pinging.receive().await {
                        Some(ServerMessage::Pong { .. }) => return,
                        Some(ServerMessage::Download { .. }) => {}
                        other => panic!("the pinging client got {other:?}"),
                    }
                }
            } => pongs += 1,
        }
    }
    assert!(pongs > 0);
    pinging.send(&upload(1, create(1))).await;
    loop {
        match pinging.receive().await {
            Some(ServerMessage::Download { uploaded_through: 1, .. }) => break,
            Some(ServerMessage::Download { .. } | ServerMessage::Pong { .. }) => {}
            other => panic!("the pinging client got {other:?}"),
        }
    }
    server.shutdown().await;
}

/// A raw HTTP/1.1 request; returns the whole response.
async fn http_raw(server: &Server, method: &str, path: &str, token: Option<&str>, body: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

async fn http_get(server: &Server, path: &str) -> String {
    http_raw(server, "GET", path, None, "").await
}

#[tokio::test]
async fn health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    assert!(http_get(&server, "/health").await.ends_with("ok\n"));
    let (mut client, _, _) = Client::bind(&server, "", "p").await;
    client.send(&upload(1, create(1))).await;
    client.acknowledged(1).await;
    let metrics = http_get(&server, "/metrics").await;
    for line in [
        "haven_connections 1",
        "haven_partitions 1",
        "haven_changesets_integrated_total 1",
        "haven_integration_seconds_count 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(metrics.contains("haven_bytes_in_total"));
    server.shutdown().await;
}

#[tokio::test]
async fn dev_mode_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(EmbeddedStorage::open(dir.path()).unwrap());
    let refused = Server::start(storage, Authenticator::Dev, "0.0.0.0:0".parse().unwrap()).await;
    assert!(matches!(refused, Err(ServeError::DevModeNotLoopback(_))));
}

#[tokio::test]
async fn shutdown_tells_clients_to_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let (mut client, _, _) = Client::bind(&server, "", "p").await;
    assert!(matches!(client.receive().await, Some(ServerMessage::Download { .. })));
    let stopping = tokio::spawn(server.shutdown());
    match client.receive().await {
        Some(ServerMessage::Error {
            code: ErrorCode::Unavailable, action: protocol::Action::Reconnect { .. }, ..
        }) => {}
        other => panic!("{other:?}"),
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_server_that_knows_less_than_it_acknowledged_asks_for_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let (mut client, ident, _) = Client::bind(&server, "", "p").await;
    client.send(&upload(1, create(1))).await;
    client.acknowledged(1).await;
    // The file was acknowledged up to 3 by a server since restored from an older backup.
    let mut again = rebind(&server, ident, client.held(1), 3, 3).await;
    match again.receive().await {
        Some(ServerMessage::Error {
            code: ErrorCode::ClientReset,
            action:
                protocol::Action::ClientReset { reason: protocol::ResetReason::ServerRestored, acknowledged: Some(1) },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_upload_too_large_to_come_back_as_history_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let (mut client, _, _) = Client::bind(&server, "", "p").await;
    let name = "x".repeat(protocol::MAX_UPLOAD_BYTES);
    let instruction =
        Instruction::Set { object_type: "Dog".into(), pk: 1.into(), field: "name".into(), value: name.into() };
    let frame = protocol::encode(&upload(1, instruction)).unwrap();
    assert!(frame.len() > protocol::MAX_UPLOAD_BYTES && frame.len() <= MAX_FRAME_BYTES);
    client.send_bytes(frame).await;
    assert!(client.refused(ErrorCode::BadUpload).await.contains("split large write transactions"));
    assert_eq!(version(&server, "", "p").await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_file_older_than_what_the_server_has_from_it_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let (mut client, ident, _) = Client::bind(&server, "", "p").await;
    client.send(&upload(1, create(1))).await;
    client.send(&upload(2, create(2))).await;
    client.acknowledged(2).await;
    // A copy of the file from before its second write comes back: its next
    // write would reuse client version 2 and be skipped as integrated.
    let mut copy = rebind(&server, ident, client.held(1), 1, 1).await;
    match copy.receive().await {
        Some(ServerMessage::Error {
            action:
                protocol::Action::ClientReset { reason: protocol::ResetReason::ClientRestored, acknowledged: Some(2) },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

/// An admin request; returns the status code and the JSON body.
async fn http(server: &Server, method: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    http_with(server, method, path, token, "").await
}

async fn http_with(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let response = http_raw(server, method, path, token, body).await;
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

async fn start_admin(dir: &std::path::Path) -> Server {
    let storage = Arc::new(EmbeddedStorage::open(&dir.join("server")).unwrap());
    let listen = "127.0.0.1:0".parse().unwrap();
    Server::start_with_admin(storage, Authenticator::Dev, listen, Some("admin-secret".into())).await.unwrap()
}

/// The next message that is not a download, `None` once closed.
async fn next_non_download(client: &mut Client) -> Option<ServerMessage> {
    loop {
        match client.receive().await {
            Some(ServerMessage::Download { .. }) => continue,
            other => return other,
        }
    }
}

#[tokio::test]
async fn the_admin_api_needs_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let off = start(dir.path(), Authenticator::Dev).await;
    let (status, body) = http(&off, "GET", "/admin/v1/partitions", Some("x")).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("--admin-token"));
    off.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let server = start_admin(dir.path()).await;
    assert_eq!(http(&server, "GET", "/admin/v1/partitions", None).await.0, 401);
    assert_eq!(http(&server, "GET", "/admin/v1/partitions", Some("admin-secreT")).await.0, 401);
    assert_eq!(http(&server, "POST", "/admin/v1/partitions/p/terminate", Some("wrong")).await.0, 401);
    let (status, body) = http(&server, "GET", "/admin/v1/partitions", Some("admin-secret")).await;
    assert_eq!((status, body), (200, serde_json::json!({"partitions": []})));
    server.shutdown().await;
}

/// The admin API bounds what it reads: a body over 2 MiB is refused
/// once the limit is passed, deeply nested JSON is a clear error, and the
/// server keeps answering.
#[tokio::test]
async fn admin_payloads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_admin(dir.path()).await;
    // A 3 MB body, of which only one byte past the limit is sent: the
    // server has read all that was sent when it refuses (a close with
    // unread bytes would be a reset, and the answer could be lost).
    let mut stream = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let head = "PUT /admin/v1/schema HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin-secret\r\n\
                Content-Length: 3000000\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b' '; (2 << 20) + 1]).await.unwrap();
    let mut response = vec![0; 12];
    stream.read_exact(&mut response).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&response), "HTTP/1.1 413");
    let nested = "[".repeat(100_000) + &"]".repeat(100_000);
    let (status, body) = http_with(&server, "PUT", "/admin/v1/schema", Some("admin-secret"), &nested).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("recursion limit"), "{body}");
    let (status, body) = http(&server, "GET", "/admin/v1/partitions", Some("admin-secret")).await;
    assert_eq!((status, body), (200, serde_json::json!({"partitions": []})), "the server still answers");
    server.shutdown().await;
}

#[tokio::test]
async fn partitions_list_versions_and_connected_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_admin(dir.path()).await;
    let (mut client, ident, _) = Client::bind(&server, "", "p").await;
    client.send(&upload(1, create(1))).await;
    client.acknowledged(1).await;
    let (status, body) = http(&server, "GET", "/admin/v1/partitions", Some("admin-secret")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"partitions": [{"partition": "p", "version": 1, "connected_clients": [ident.ident]}]})
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_operator_resets_one_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_admin(dir.path()).await;
    let (mut target, ident, _) = Client::bind(&server, "", "p").await;
    let (mut other, _, _) = Client::bind(&server, "", "p").await;
    let (status, body) =
        http(&server, "POST", &format!("/admin/v1/clients/{}/reset", ident.ident), Some("admin-secret")).await;
    assert_eq!((status, &body["reset_clients"]), (200, &serde_json::json!([ident.ident])));
    match next_non_download(&mut target).await {
        Some(ServerMessage::Error {
            code: ErrorCode::ClientReset,
            action: protocol::Action::ClientReset { reason, .. },
            ..
        }) => {
            assert_eq!(reason, protocol::ResetReason::OperatorReset)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(target.receive().await, None);
    // Binding again with that file is refused the same way; the other client syncs on.
    let mut again = rebind(&server, ident, (0, 0), 0, 0).await;
    assert!(matches!(
        again.receive().await,
        Some(ServerMessage::Error {
            action: protocol::Action::ClientReset { reason: protocol::ResetReason::OperatorReset, .. },
            ..
        })
    ));
    other.send(&upload(1, create(1))).await;
    other.acknowledged(1).await;
    assert_eq!(http(&server, "POST", "/admin/v1/clients/999/reset", Some("admin-secret")).await.0, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn terminating_a_partition_resets_its_clients_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_admin(dir.path()).await;
    let (mut a, _, _) = Client::bind(&server, "", "p").await;
    let (mut b, _, _) = Client::bind(&server, "", "p").await;
    let (mut elsewhere, _, _) = Client::bind(&server, "", "q").await;
    let (status, body) = http(&server, "POST", "/admin/v1/partitions/p/terminate", Some("admin-secret")).await;
    assert_eq!(status, 200);
    assert_eq!(body["reset_clients"].as_array().unwrap().len(), 2);
    for client in [&mut a, &mut b] {
        assert!(matches!(
            next_non_download(client).await,
            Some(ServerMessage::Error {
                action: protocol::Action::ClientReset { reason: protocol::ResetReason::Terminated, .. },
                ..
            })
        ));
    }
    elsewhere.send(&upload(1, create(1))).await;
    elsewhere.acknowledged(1).await;
    // A new client of the terminated partition starts from its state.
    let (_, _, version) = Client::bind(&server, "", "p").await;
    assert_eq!(version, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn compaction_resets_only_clients_that_need_the_history_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_admin(dir.path()).await;
    let (_, behind, _) = Client::bind(&server, "", "p").await;
    let (_, at_the_point, _) = Client::bind(&server, "", "p").await;
    let (mut writer, writer_ident, _) = Client::bind(&server, "", "p").await;
    for v in 1..=5 {
        writer.send(&upload(v, create(v as i64))).await;
        writer.acknowledged(v).await;
    }
    let (at_2, at_4, at_5) = (writer.held(2), writer.held(4), writer.held(5));
    drop(writer);
    let (status, body) =
        http_with(&server, "POST", "/admin/v1/partitions/p/compact", Some("admin-secret"), r#"{"keep_versions": 1}"#)
            .await;
    assert_eq!((status, &body["trimmed_through"]), (200, &serde_json::json!(4)));

    // A file that stopped at version 2 needs history that is gone.
    let mut old = rebind(&server, behind, at_2, 0, 0).await;
    match old.receive().await {
        Some(ServerMessage::Error { action: protocol::Action::ClientReset { reason, .. }, message, .. }) => {
            assert_eq!(reason, protocol::ResetReason::HistoryTrimmed);
            assert!(message.contains("compacted"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // An up-to-date file, and one at the compaction point, go on.
    let mut current = rebind(&server, writer_ident, at_5, 5, 5).await;
    assert!(matches!(current.receive().await, Some(ServerMessage::Bound { server_version: 5, .. })));
    let mut at_point = rebind(&server, at_the_point, at_4, 0, 0).await;
    assert!(matches!(at_point.receive().await, Some(ServerMessage::Bound { .. })));
    match at_point.receive().await {
        Some(ServerMessage::Download { changesets, .. }) => assert_eq!(changesets.len(), 1),
        other => panic!("{other:?}"),
    }
    // A new client starts from the state, which compaction keeps whole.
    let mut fresh = Client::connect(&server).await;
    fresh.send(&bind("", "p")).await;
    assert!(matches!(fresh.receive().await, Some(ServerMessage::Bound { server_version: 5, .. })));
    let mut objects = 0;
    while let Some(ServerMessage::Bootstrap { objects: batch, last, .. }) = fresh.receive().await {
        objects += batch.len();
        if last {
            break;
        }
    }
    assert_eq!(objects, 5);
    // Bad bodies are named.
    let (status, body) =
        http_with(&server, "POST", "/admin/v1/partitions/p/compact", Some("admin-secret"), r#"{"keep": 1}"#).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("keep_versions"), "{body}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_partition_without_recovery_resets_with_no_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_admin(dir.path()).await;
    let (mut client, ident, _) = Client::bind(&server, "", "p").await;
    let (status, _) =
        http_with(&server, "POST", "/admin/v1/partitions/p/recovery", Some("admin-secret"), r#"{"allowed": false}"#)
            .await;
    assert_eq!(status, 200);
    http(&server, "POST", &format!("/admin/v1/clients/{}/reset", ident.ident), Some("admin-secret")).await;
    match next_non_download(&mut client).await {
        Some(ServerMessage::Error { action: protocol::Action::ClientResetNoRecovery { reason, .. }, .. }) => {
            assert_eq!(reason, protocol::ResetReason::OperatorReset)
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_version_numbered_again_since_the_client_saw_it_is_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let (mut client, ident, _) = Client::bind(&server, "", "p").await;
    client.send(&upload(1, create(1))).await;
    client.acknowledged(1).await;
    let (version, salt) = client.held(1);
    assert_ne!(salt, 0, "every new version has a salt");
    // With its own salt it goes on.
    let mut same = rebind(&server, ident, (version, salt), 1, 1).await;
    assert!(matches!(same.receive().await, Some(ServerMessage::Bound { server_version: 1, .. })));
    drop(same);
    // The same number with another salt: another history.
    let mut other = rebind(&server, ident, (version, salt ^ 1), 1, 1).await;
    match other.receive().await {
        Some(ServerMessage::Error {
            action:
                protocol::Action::ClientReset { reason: protocol::ResetReason::ServerRestored, acknowledged: Some(1) },
            message,
            ..
        }) => assert!(message.contains("restored"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Told to reset, that ident is done: the server takes nothing more of it.
    let mut again = rebind(&server, ident, (version, salt), 1, 1).await;
    assert!(matches!(again.receive().await, Some(ServerMessage::Error { code: ErrorCode::ClientReset, .. })));
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_asks_for_a_reset_is_reset_once_its_schema_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let (mut client, ident, _) = Client::bind(&server, "", "p").await;
    client.send(&upload(1, create(1))).await;
    client.acknowledged(1).await;
    let mut asking = rebind_with(&server, ident, client.held(1), 1, 1, true).await;
    match asking.receive().await {
        Some(ServerMessage::Error {
            action:
                protocol::Action::ClientReset { reason: protocol::ResetReason::SchemaBreaking, acknowledged: Some(1) },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(asking.receive().await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_older_than_the_served_versions_is_told_in_its_own_framing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let mut old = Client::connect(&server).await;
    let previous = protocol::OLDEST_SERVED_VERSION - 1;
    let mut frame = protocol::encode(&bind("", "p")).unwrap();
    frame[2..4].copy_from_slice(&previous.to_le_bytes());
    old.send_bytes(frame).await;
    let answer = match old.ws.next().await {
        Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(u16::from_le_bytes([answer[2], answer[3]]), previous, "framed for the old client");
    let mut readable = answer.clone();
    readable[2..4].copy_from_slice(&protocol::PROTOCOL_VERSION.to_le_bytes());
    match protocol::decode(&readable).unwrap() {
        ServerMessage::Error { code: ErrorCode::WrongProtocolVersion, message, action: protocol::Action::Fatal } => {
            let (theirs, ours) = (previous.to_string(), protocol::PROTOCOL_VERSION.to_string());
            assert!(message.contains(&theirs) && message.contains(&ours), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(version(&server, "", "p").await, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_of_the_previous_protocol_version_is_served_in_its_own_framing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let mut old = Client::connect(&server).await;
    let previous = protocol::PROTOCOL_VERSION - 1;
    assert!(previous >= protocol::OLDEST_SERVED_VERSION);
    let mut frame = protocol::encode(&bind("", "p")).unwrap();
    protocol::reframe(&mut frame, previous);
    old.send_bytes(frame).await;
    let answer = match old.ws.next().await {
        Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(u16::from_le_bytes([answer[2], answer[3]]), previous, "framed for the old client");
    let (message, _) = protocol::decode_served::<ServerMessage>(&answer).unwrap();
    assert!(matches!(message, ServerMessage::Bound { .. }), "{message:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_of_an_older_protocol_is_told_to_update_rather_than_sent_list_element_edits() {
    let id = haven_core::merge::ElementId { origin: 9, hlc: Hlc { millis: 1, counter: 0 }, seq: 0 };
    let assign = Instruction::ListAssign {
        object_type: "Dog".into(),
        pk: 1.into(),
        field: "tags".into(),
        elements: vec![(id, "a".into())],
    };
    told_to_update(&[assign], protocol::LIST_ELEMENTS_VERSION - 1, "list element edits").await;
}

#[tokio::test]
async fn a_client_of_an_older_protocol_is_told_to_update_rather_than_sent_sets() {
    let add =
        Instruction::SetAdd { object_type: "Dog".into(), pk: 1.into(), field: "colors".into(), value: "red".into() };
    told_to_update(&[add], protocol::COLLECTIONS_VERSION - 1, "sets and dictionaries").await;
}

#[tokio::test]
async fn a_client_of_an_older_protocol_is_told_to_update_rather_than_sent_edits_of_embedded_objects_in_lists() {
    let id = haven_core::merge::ElementId { origin: 9, hlc: Hlc { millis: 1, counter: 0 }, seq: 0 };
    let home = Value::Dictionary([("city".to_owned(), Value::from("Rome"))].into());
    let (object_type, pk, field) = (String::from("Dog"), Value::from(1), String::from("homes"));
    let assign = Instruction::ListAssign {
        object_type: object_type.clone(),
        pk: pk.clone(),
        field: field.clone(),
        elements: vec![(id, home)],
    };
    let put = Instruction::ListElementPut { object_type, pk, field, id, key: "city".into(), value: "Oslo".into() };
    told_to_update(&[assign, put], protocol::ELEMENT_FIELDS_VERSION - 1, "edits of embedded objects in lists").await;
}

/// A client of protocol `older` binds to a partition that holds
/// `instructions`: it is refused, told why (`why`), in its own framing,
/// and sent nothing of the partition.
async fn told_to_update(instructions: &[Instruction], older: u16, why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Authenticator::Dev).await;
    let (mut new, _, _) = Client::bind(&server, "", "p").await;
    new.send(&upload(1, create(1))).await;
    for (n, instruction) in instructions.iter().enumerate() {
        new.send(&upload(2 + n as u64, instruction.clone())).await;
    }
    new.acknowledged(1 + instructions.len() as u64).await;

    let mut old = Client::connect(&server).await;
    let mut frame = protocol::encode(&bind("", "p")).unwrap();
    protocol::reframe(&mut frame, older);
    old.send_bytes(frame).await;
    let mut answers = Vec::new();
    while let Some(Ok(Message::Binary(bytes))) = old.ws.next().await {
        assert_eq!(u16::from_le_bytes([bytes[2], bytes[3]]), older, "framed for the old client");
        answers.push(protocol::decode_served::<ServerMessage>(&bytes).unwrap().0);
    }
    assert!(matches!(answers[0], ServerMessage::Bound { .. }), "{answers:?}");
    let Some(ServerMessage::Error { code, message, action }) = answers.last() else { panic!("{answers:?}") };
    assert_eq!((*code, *action), (ErrorCode::WrongProtocolVersion, protocol::Action::Fatal));
    assert!(message.contains("update the app") && message.contains(why), "{message}");
    assert!(
        !answers.iter().any(|a| matches!(a, ServerMessage::Bootstrap { objects, .. } if !objects.is_empty())),
        "nothing of the partition was sent: {answers:?}"
    );
    server.shutdown().await;
}
