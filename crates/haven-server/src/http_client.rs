//! A small HTTP/1.1 client, over TLS for `https://`: how the server
//! fetches an identity provider's keys and how `haven admin` talks to a
//! server.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{header, Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

/// The largest answer read: a key set is a few KiB, an admin listing of
/// many partitions a few MiB.
const MAX_BODY_BYTES: usize = 16 << 20;

/// How long a request may take, connecting included.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One request: `method` to `url` (`http://` or `https://`), with a bearer
/// token and a JSON body if given; `extra_roots` (PEM) are trusted for
/// `https://` besides the webpki roots. Returns the status and the body.
///
/// ```no_run
/// # async fn run() -> Result<(), String> {
/// let (status, body) =
///     haven_server::http_request(haven_server::Method::GET, "https://auth.example.com/jwks.json", None, String::new(), &[]).await?;
/// # Ok(()) }
/// ```
pub async fn http_request(
    method: Method,
    url: &str,
    bearer: Option<&str>,
    body: String,
    extra_roots: &[Vec<u8>],
) -> Result<(StatusCode, Bytes), String> {
    tokio::time::timeout(REQUEST_TIMEOUT, request(method, url, bearer, body, extra_roots))
        .await
        .map_err(|_| format!("no answer from {url} within {REQUEST_TIMEOUT:?}"))?
}

async fn request(
    method: Method,
    url: &str,
    bearer: Option<&str>,
    body: String,
    extra_roots: &[Vec<u8>],
) -> Result<(StatusCode, Bytes), String> {
    let uri: Uri = url.parse().map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    let secure = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("'{url}' must start with http:// or https://")),
    };
    let host = uri.host().ok_or_else(|| format!("'{url}' has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp =
        tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
    let request = Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, uri.authority().map_or(host, |a| a.as_str()))
        .header(header::CONTENT_TYPE, "application/json");
    let request = match bearer {
        Some(token) => request.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => request,
    };
    let request = request.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
    if !secure {
        return send(TokioIo::new(tcp), request).await;
    }
    let tls = haven_sync::tls::client_config(extra_roots).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| format!("{host}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| {
        let reason = haven_sync::tls::handshake_failure(&e).unwrap_or_else(|| e.to_string());
        format!("TLS with {host} failed: {reason}")
    })?;
    send(TokioIo::new(stream), request).await
}

async fn send<S>(stream: TokioIo<S>, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(stream).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let limited = http_body_util::Limited::new(response.into_body(), MAX_BODY_BYTES);
    let body = limited.collect().await.map_err(|e| format!("cannot read the answer: {e}"))?.to_bytes();
    Ok((status, body))
}
