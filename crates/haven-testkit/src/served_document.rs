//! A document served over plain HTTP on loopback (an identity provider's
//! key set, say), replaceable while it is served, counting the requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One document at every path of `http://ADDR/`.
pub struct ServedDocument {
    addr: SocketAddr,
    body: Arc<Mutex<String>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ServedDocument {
    /// Serves `body` (as `application/json`).
    pub async fn start(body: impl Into<String>) -> ServedDocument {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let body = Arc::new(Mutex::new(body.into()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (body.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (served, counted) = (served.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().expect("body").clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        ServedDocument { addr, body, requests, task }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves `body` from now on.
    pub fn replace(&self, body: impl Into<String>) {
        *self.body.lock().expect("body") = body.into();
    }

    /// How many requests it answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ServedDocument {
    fn drop(&mut self) {
        self.task.abort();
    }
}
