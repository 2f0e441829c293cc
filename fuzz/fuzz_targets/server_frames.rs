//! The server's handling of arbitrary frames after a valid bind: whatever
//! a bound client sends, the server answers or closes that connection,
//! and never panics (libFuzzer's panic hook aborts the process on a panic
//! in any thread, a session's included) and keeps serving others.
//!
//! The input is split at 0xFF bytes into frames; each gets a valid frame
//! header so that the decoder's checks are passed and the session's are
//! reached.
#![no_main]

use futures_util::{SinkExt, StreamExt};
use haven_server::{Authenticator, EmbeddedStorage, Server};
use haven_sync::protocol::{self, ClientMessage, ServerMessage, PROTOCOL_VERSION};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const SCHEMA: &str =
    r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?","tags":"string[]"}}]"#;

struct Harness {
    runtime: tokio::runtime::Runtime,
    url: String,
    _dir: tempfile::TempDir,
    _server: Server,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(EmbeddedStorage::open(&dir.path().join("server")).unwrap());
        let server =
            runtime.block_on(Server::start(storage, Authenticator::Dev, "127.0.0.1:0".parse().unwrap())).unwrap();
        let url = format!("{}/sync", server.url());
        Harness { runtime, url, _dir: dir, _server: server }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let h = harness();
    h.runtime.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&h.url).await.expect("the server accepts connections");
        // A partition per input: what one input stored does not slow the next.
        static INPUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let partition = format!("fuzz-{}", INPUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let bind = ClientMessage::Bind {
            token: "fuzz".into(),
            partition,
            file_ident: None,
            last_server_version: 0,
            last_server_version_salt: 0,
            uploaded_through: 0,
            last_client_version: 0,
            schema: SCHEMA.into(),
            resetting: false,
            request_reset: false,
        };
        ws.send(Message::Binary(protocol::encode(&bind).unwrap().into())).await.unwrap();
        match next(&mut ws).await {
            Some(ServerMessage::Bound { .. }) => {}
            other => panic!("a valid bind is answered with Bound, got {other:?}"),
        }
        for body in data.split(|b| *b == 0xFF) {
            let mut frame = b"HV".to_vec();
            frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
            frame.extend_from_slice(body);
            if ws.send(Message::Binary(frame.into())).await.is_err() {
                return; // closed by the server after an error: fine
            }
        }
        // Close, and read until the server has closed too: the session is
        // over before the next input starts. Whatever came back must decode.
        let _ = ws.close(None).await;
        tokio::time::timeout(Duration::from_secs(30), async { while next(&mut ws).await.is_some() {} })
            .await
            .expect("the server closes the connection");
    });
});

/// The next server message (`None` once closed); a frame that does not
/// decode is a bug.
async fn next(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Option<ServerMessage> {
    loop {
        match ws.next().await? {
            Ok(Message::Binary(bytes)) => return Some(protocol::decode(&bytes).expect("the server's frames decode")),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
