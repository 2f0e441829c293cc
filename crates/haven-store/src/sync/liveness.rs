//! Whether a connection is alive, from what crosses its socket.
//!
//! A connection is alive while bytes come in, or while bytes of an
//! upload go out (the server answers nothing while it reads a large
//! frame). Whole frames are too coarse: a 16 MiB download on a slow link
//! takes longer than the ping timeout. And pings going out prove nothing:
//! a half-open connection's socket buffer takes them for a long time.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When a connection last showed signs of life.
pub(crate) struct Liveness {
    started: Instant,
    /// Milliseconds since `started` at the last byte read.
    read: AtomicU64,
    /// Milliseconds since `started` at the last byte of an upload written.
    upload_written: AtomicU64,
    /// Whether the bytes being written now belong to an upload.
    writing_upload: AtomicBool,
}

impl Liveness {
    pub(crate) fn new() -> Arc<Liveness> {
        Arc::new(Liveness {
            started: Instant::now(),
            read: AtomicU64::new(0),
            upload_written: AtomicU64::new(0),
            writing_upload: AtomicBool::new(false),
        })
    }

    /// Marks the frame about to be written as an upload or not.
    pub(crate) fn writing_upload(&self, upload: bool) {
        self.writing_upload.store(upload, Ordering::Relaxed);
    }

    /// How long since the last byte read or the last byte of an upload
    /// written, whichever is later.
    pub(crate) fn quiet_for(&self) -> Duration {
        let last = self.read.load(Ordering::Relaxed).max(self.upload_written.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(Duration::from_millis(last))
    }

    fn stamp(&self, at: &AtomicU64) {
        at.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// A byte stream to the server: TCP, or TLS over TCP.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

/// A stream to the server that tells its [`Liveness`] what crosses it.
pub(crate) struct Stamped {
    inner: Box<dyn Transport>,
    liveness: Arc<Liveness>,
}

impl Stamped {
    pub(crate) fn new(inner: Box<dyn Transport>, liveness: Arc<Liveness>) -> Stamped {
        Stamped { inner, liveness }
    }
}

impl AsyncRead for Stamped {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.liveness.stamp(&self.liveness.read);
        }
        polled
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) && self.liveness.writing_upload.load(Ordering::Relaxed) {
            self.liveness.stamp(&self.liveness.upload_written);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
