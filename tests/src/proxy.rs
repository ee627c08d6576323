//! A TCP proxy in front of a real server that a test takes down and brings back: "the store does
//! not answer" without touching the server or its other clients.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards them to the server.
    Up,
    /// Closes them (end of stream), as a proxy or pooler with its server gone does.
    Close,
    /// Resets them (TCP RST), as a host whose server process is gone does.
    Reset,
}

/// Forwards every connection to `upstream` while [`Mode::Up`]; otherwise ends the connections it
/// forwarded and ends new ones at once, the way the mode says.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect (127.0.0.1, a port the proxy bound itself).
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port, up.
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, state) = watch::channel(Mode::Up);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let now = *state.borrow();
                if now == Mode::Up {
                    tokio::spawn(forward(client, upstream.clone(), state.clone()));
                } else {
                    end(client, now);
                }
            }
        });
        Self { addr, mode, task }
    }

    /// Switches to `mode`: every forwarded connection ends when it is not [`Mode::Up`].
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Close);
        self.task.abort();
    }
}

fn end(stream: TcpStream, mode: Mode) {
    if mode == Mode::Reset {
        // Linger 0: closing sends RST instead of FIN.
        let _ = stream.set_zero_linger();
    }
    drop(stream);
}

async fn forward(mut client: TcpStream, upstream: String, mut state: watch::Receiver<Mode>) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        mode = state.wait_for(|m| *m != Mode::Up) => {
            let mode = mode.map_or(Mode::Close, |m| *m);
            end(client, mode);
        }
    }
}
