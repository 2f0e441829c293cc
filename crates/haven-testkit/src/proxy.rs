//! A fault-injecting TCP proxy on loopback.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A TCP proxy between clients and one or more servers that cuts, delays
/// and refuses connections on command. With several servers it fails
/// over like a load balancer: each new connection goes to the first
/// server that accepts it.
pub struct Proxy {
    addr: SocketAddr,
    faults: Arc<Mutex<Faults>>,
    /// Client chunks held back by a stall and forwarded after it.
    late: Arc<AtomicUsize>,
}

/// What the proxy does to connections; change it with [`Proxy::set`].
#[derive(Default)]
pub struct Faults {
    /// Bytes each new connection may carry before it is cut, in turn.
    pub cut_schedule: VecDeque<i64>,
    /// For connections beyond the schedule (`None`: never cut).
    pub cut_after: Option<i64>,
    /// Added before forwarding each chunk.
    pub delay: Duration,
    /// New connections are dropped at once (the network is down).
    pub refuse: bool,
    /// New connections are accepted but carry nothing until released (a
    /// server that stopped answering).
    pub stall: bool,
    accepted: usize,
    live: Vec<Connection>,
}

/// A connection through the proxy.
struct Connection {
    task: tokio::task::AbortHandle,
    /// While set, what it reads is held back (delivered late on release).
    stalled: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy in front of `target`. Call inside a Tokio runtime.
    pub async fn start(target: SocketAddr) -> Proxy {
        Proxy::failover(vec![target]).await
    }

    /// A proxy in front of `targets`: each new connection goes to the
    /// first of them that accepts it (a killed server refuses, so its
    /// clients move to the next).
    pub async fn failover(targets: Vec<SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let faults = Arc::new(Mutex::new(Faults::default()));
        let late = Arc::new(AtomicUsize::new(0));
        let (shared, shared_late) = (faults.clone(), late.clone());
        let targets = Arc::new(targets);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut f = lock(&shared);
                f.accepted += 1;
                f.live.retain(|c| !c.task.is_finished());
                if f.refuse {
                    continue;
                }
                let link = Link {
                    budget: AtomicI64::new(f.cut_schedule.pop_front().or(f.cut_after).unwrap_or(i64::MAX)),
                    delay: f.delay,
                    stalled: Arc::new(AtomicBool::new(f.stall)),
                    late: shared_late.clone(),
                    cut: AtomicBool::new(false),
                    cut_now: Notify::new(),
                };
                let stalled = link.stalled.clone();
                let targets = targets.clone();
                let task = tokio::spawn(async move {
                    for target in targets.iter() {
                        if let Ok(outbound) = TcpStream::connect(target).await {
                            return forward(inbound, outbound, link).await;
                        }
                    }
                });
                f.live.push(Connection { task: task.abort_handle(), stalled });
            }
        });
        Proxy { addr, faults, late }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://` and [`Proxy::addr`], for a sync configuration.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Cuts every connection open now.
    pub fn cut_all(&self) {
        for connection in lock(&self.faults).live.drain(..) {
            connection.task.abort();
        }
    }

    /// Connections open now carry nothing more until [`Proxy::release`]
    /// (half-open connections: each end thinks the other is there); new
    /// ones are not affected.
    pub fn stall_open(&self) {
        for connection in &lock(&self.faults).live {
            connection.stalled.store(true, Ordering::SeqCst);
        }
    }

    /// Stalled connections deliver what they held back, late (after what
    /// newer connections carried meanwhile), and new ones are not stalled.
    pub fn release(&self) {
        let mut f = lock(&self.faults);
        f.stall = false;
        for connection in &f.live {
            connection.stalled.store(false, Ordering::SeqCst);
        }
    }

    /// Changes the faults applied from now on.
    pub fn set(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.faults));
    }

    /// The faults now (to check, say, that every planned cut happened).
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        lock(&self.faults).accepted
    }

    /// Chunks from clients that a stall held back and that reached the
    /// server once released.
    pub fn delivered_late(&self) -> usize {
        self.late.load(Ordering::SeqCst)
    }
}

fn lock(faults: &Mutex<Faults>) -> MutexGuard<'_, Faults> {
    // A panicking test thread must not hide the proxy from the others.
    faults.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one connection does to its bytes.
struct Link {
    /// Bytes it may carry before it is cut.
    budget: AtomicI64,
    /// Added before forwarding each chunk.
    delay: Duration,
    stalled: Arc<AtomicBool>,
    late: Arc<AtomicUsize>,
    /// Set (and announced) when the budget is spent: both directions end.
    cut: AtomicBool,
    cut_now: Notify,
}

/// Copies both ways. Each direction runs until its reader ends (passing
/// the end on, so that what was held back still arrives before it) or
/// its writer fails; a spent budget cuts both at once.
async fn forward(a: TcpStream, b: TcpStream, link: Link) {
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    tokio::join!(pump(ar, bw, &link, true), pump(br, aw, &link, false));
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: &Link, upstream: bool) {
    let mut buf = vec![0u8; 2048];
    loop {
        if link.cut.load(Ordering::SeqCst) {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = link.cut_now.notified() => return,
        };
        if !link.delay.is_zero() {
            tokio::time::sleep(link.delay).await;
        }
        let held = link.stalled.load(Ordering::SeqCst);
        while link.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Forward what the budget allows; past it, the connection is cut.
        let left = link.budget.fetch_sub(n as i64, Ordering::SeqCst);
        let allowed = n.min(left.max(0) as usize);
        if allowed < n {
            link.cut.store(true, Ordering::SeqCst);
            link.cut_now.notify_waiters();
        }
        if allowed == 0 || to.write_all(&buf[..allowed]).await.is_err() || allowed < n {
            return;
        }
        if held && upstream {
            link.late.fetch_add(1, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown().await;
}
