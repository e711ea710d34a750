//! A faithful simulator of the IYS API (`iyshub sim`), also usable as a library: tests start it
//! in-process on port 0 with [`SimServer::start`].
//!
//! Same paths, bodies, status codes, H-codes, rules and limits as IYS's OpenAPI document, with
//! IYS's state model (movements with transactionId and creationDate), asynchronous bulk
//! processing, the changes feed, push delivery, and a control API under `/_sim/` for citizen
//! actions, clock control, fault injection, seeding and statistics.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod control;
pub mod faults;
pub mod info_data;
pub mod limits;
pub mod push;
pub mod state;
pub mod stats;
pub mod tsr;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{Profile, SimConfig};

use auth::Auth;
use clock::SimClock;
use faults::Faults;
use limits::Limiter;
use state::{IysState, Snapshot};
use stats::Stats;

/// Everything a running simulator holds. Locks are held briefly and never across an await.
#[derive(Debug)]
pub struct Sim {
    pub config: RwLock<SimConfig>,
    pub clock: SimClock,
    pub state: Mutex<IysState>,
    pub auth: Mutex<Auth>,
    pub limiter: Mutex<Limiter>,
    pub faults: Mutex<Faults>,
    pub stats: Mutex<Stats>,
    push_jobs: mpsc::UnboundedSender<push::PushJob>,
    state_file: Option<PathBuf>,
    /// One large body checked at a time, on the blocking pool: a burst of bulk requests then
    /// keeps a core free for taking (and stamping) the requests that arrive meanwhile.
    pub(crate) checking: tokio::sync::Semaphore,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("reading the state file {path}: {source}")]
    StateRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the state file {path} is not a simulator snapshot: {source}")]
    StateFormat {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing the state file {path}: {source}")]
    StateWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

impl Sim {
    fn new(
        config: SimConfig,
        state_file: Option<PathBuf>,
    ) -> Result<(Arc<Sim>, mpsc::UnboundedReceiver<push::PushJob>), SimError> {
        let state = match &state_file {
            Some(path) if path.exists() => {
                let text = std::fs::read(path).map_err(|source| SimError::StateRead {
                    path: path.clone(),
                    source,
                })?;
                let snap: Snapshot =
                    serde_json::from_slice(&text).map_err(|source| SimError::StateFormat {
                        path: path.clone(),
                        source,
                    })?;
                IysState::restore(snap)
            }
            _ => IysState::default(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let sim = Arc::new(Sim {
            faults: Mutex::new(Faults::new(config.seed)),
            config: RwLock::new(config),
            clock: SimClock::default(),
            state: Mutex::new(state),
            auth: Mutex::new(Auth::default()),
            limiter: Mutex::new(Limiter::default()),
            stats: Mutex::new(Stats::default()),
            push_jobs: tx,
            state_file,
            checking: tokio::sync::Semaphore::new(1),
        });
        Ok((sim, rx))
    }

    pub fn config(&self) -> SimConfig {
        self.config.read().expect("config lock").clone()
    }

    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// Settles the bulk items whose time has come (called on every request and by a ticker).
    pub fn process_due(&self) {
        let now = self.now();
        self.state.lock().expect("state lock").process_due(now);
    }

    /// Writes the state file atomically (temporary file, then rename).
    pub fn save(&self) -> Result<(), SimError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let snap = self.state.lock().expect("state lock").snapshot();
        let write_err = |source| SimError::StateWrite {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(&snap).map_err(|e| write_err(std::io::Error::other(e)))?;
        std::fs::write(&tmp, bytes).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// Queues push deliveries of an `IYS_*` movement to the brand's registered URLs.
    pub fn push_movement(&self, movement: u32) {
        let _ = self.push_jobs.send(push::PushJob::Movement(movement));
    }

    /// Wipes every consent, token, limit, fault and statistic; the clock returns to real time.
    pub fn reset(&self) {
        *self.state.lock().expect("state lock") = IysState::default();
        *self.auth.lock().expect("auth lock") = Auth::default();
        *self.limiter.lock().expect("limiter lock") = Limiter::default();
        *self.stats.lock().expect("stats lock") = Stats::default();
        self.faults.lock().expect("faults lock").by_endpoint.clear();
        self.clock.reset();
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimServer {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), SimError>>,
}

impl SimServer {
    /// Starts serving on `listener` (bind port 0 in tests).
    pub async fn start(
        config: SimConfig,
        listener: TcpListener,
        state_file: Option<PathBuf>,
    ) -> Result<SimServer, SimError> {
        let addr = listener.local_addr()?;
        let (sim, push_rx) = Sim::new(config, state_file)?;
        let cancel = CancellationToken::new();
        tokio::spawn(push::run(sim.clone(), push_rx, cancel.clone()));
        tokio::spawn(tick(sim.clone(), cancel.clone()));
        let app = api::router(sim.clone()).merge(control::router(sim.clone()));
        let shutdown = cancel.clone();
        let saver = sim.clone();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await?;
            saver.save()
        });
        Ok(SimServer {
            addr,
            sim,
            cancel,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, the base URL an IYS client is given.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls the control API (`/_sim/…`) over HTTP, as a test or a tool would; a non-2xx answer
    /// is an error naming the path and status.
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let r = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base_url()))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{path}: {}", r.status()));
        }
        Ok(r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// The simulator's statistics (`GET /_sim/stats`).
    pub async fn stats(&self) -> Result<serde_json::Value, String> {
        self.control(reqwest::Method::GET, "/_sim/stats", serde_json::Value::Null)
            .await
    }

    /// Stops serving, finishes in-flight requests and saves the state file.
    pub async fn shutdown(self) -> Result<(), SimError> {
        self.cancel.cancel();
        self.task
            .await
            .map_err(|e| SimError::Io(std::io::Error::other(e)))?
    }
}

/// Background work: settle due bulk items, save the state every few seconds.
async fn tick(sim: Arc<Sim>, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(50));
    let mut since_save = 0u32;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        sim.process_due();
        since_save += 1;
        if since_save >= 100 {
            since_save = 0;
            if let Err(e) = sim.save() {
                tracing::warn!(error = %e, "could not save the simulator state");
            }
        }
    }
}
