//! A loopback TCP proxy that plays a broker going away and coming back.
//!
//! Tests share one RabbitMQ and must never stop it, so a test that needs an
//! outage points its publisher at a [`Proxy`] in front of the broker and
//! breaks the proxy instead: [`Proxy::go_down`] drops every connection and
//! closes the port (connections are refused), [`Proxy::come_back`] listens
//! on the same port again, [`Proxy::stall`] keeps connections open but
//! stops carrying bytes, and a latency makes pipelining visible.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// A proxy on `127.0.0.1` in front of one upstream address.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: Mutex<Option<AbortHandle>>,
}

struct Shared {
    upstream: SocketAddr,
    latency: Duration,
    stalled: watch::Sender<bool>,
    accepted: Mutex<usize>,
    connections: Mutex<Vec<AbortHandle>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::with_latency(upstream, Duration::ZERO).await
    }

    /// Starts a proxy that delays every byte by `latency` each way.
    pub async fn with_latency(upstream: SocketAddr, latency: Duration) -> Self {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let proxy = Self {
            addr: listener
                .local_addr()
                .expect("a bound listener has an address"),
            shared: Arc::new(Shared {
                upstream,
                latency,
                stalled: watch::channel(false).0,
                accepted: Mutex::new(0),
                connections: Mutex::new(Vec::new()),
            }),
            accepting: Mutex::new(None),
        };
        proxy.accept_on(listener);
        proxy
    }

    /// The proxy's own address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        *self.shared.accepted.lock().expect("proxy state lock")
    }

    /// Drops every connection and closes the port: connecting is refused.
    pub fn go_down(&self) {
        if let Some(accepting) = self.accepting.lock().expect("proxy state lock").take() {
            accepting.abort();
        }
        for connection in self
            .shared
            .connections
            .lock()
            .expect("proxy state lock")
            .drain(..)
        {
            connection.abort();
        }
    }

    /// Listens on the same port again.
    pub async fn come_back(&self) {
        // An aborted task is dropped, and its listener closed, only once
        // the runtime gets to it; wait until the port is free.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match try_listen(self.addr) {
                Ok(listener) => break listener,
                Err(error) if Instant::now() > deadline => panic!("cannot listen again: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        self.accept_on(listener);
    }

    /// Stops (`true`) or resumes (`false`) carrying bytes, both ways, on
    /// every connection, current and future; connections stay open.
    pub fn stall(&self, stalled: bool) {
        self.shared.stalled.send_replace(stalled);
    }

    fn accept_on(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                *shared.accepted.lock().expect("proxy state lock") += 1;
                let connection = tokio::spawn(carry(client, shared.clone()));
                shared
                    .connections
                    .lock()
                    .expect("proxy state lock")
                    .push(connection.abort_handle());
            }
        });
        *self.accepting.lock().expect("proxy state lock") = Some(task.abort_handle());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.go_down();
    }
}

/// Carries one connection until either side closes it.
async fn carry(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pipe(client_read, server_write, &shared);
    let down = pipe(server_read, client_write, &shared);
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// Copies one direction: a reader stamps each chunk as it arrives, a
/// writer sends it on once its latency has passed and nothing stalls.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: &Shared) {
    let (chunks, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buffer).await {
            if chunks.send((Instant::now(), buffer[..n].to_vec())).is_err() {
                break;
            }
        }
    };

    let latency = shared.latency;
    let mut stalled = shared.stalled.subscribe();
    let write = async move {
        while let Some((arrived, chunk)) = queued.recv().await {
            tokio::time::sleep_until(arrived + latency).await;
            if stalled.wait_for(|stalled| !stalled).await.is_err() {
                break;
            }
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    // The write side ends once the reader is done and the queue drained.
    tokio::join!(read, write);
}

fn listen(addr: SocketAddr) -> TcpListener {
    try_listen(addr).expect("cannot listen on loopback")
}

fn try_listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(64)
}
