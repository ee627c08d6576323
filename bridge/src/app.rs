//! `Application`: binds both listeners and wires the store, catalog and routers together.
//! `main` and the tests start the bridge through this same path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use admin_api::{AdminState, AdminToken, Store, StoreError};
use axum::routing::get;
use axum::{Router, middleware};
use base64::Engine as _;
use futures_util::future::BoxFuture;
use socketioxide::adapter::{Adapter, Emitter, LocalAdapter};
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_postgres::{CustomPostgresAdapter, PostgresAdapterConfig, PostgresAdapterCtr};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin_writes::{CatalogSync, read_your_writes};
use crate::catalog::Catalog;
use crate::cluster::Cluster;
use crate::cluster::bus;
use crate::cluster::postgres::PgDriver;
use crate::cluster::redis::RedisDriver;
use crate::config::{AdapterKind, Config};
use crate::emit_api::auth::KeyActivity;
use crate::emit_api::{EmitDoc, EmitState};
use crate::health::Readiness;
use crate::listener::{self, Connections, Limits};
use crate::shutdown::Stopping;
use crate::socket::handover::{Handover, route_sessions};
use crate::socket::v2_compat::{V2Compat, fix_v2_connect};
use crate::socket::{Gateway, Parts};
use crate::stats::{Counters, NodeView};
use crate::webhook::outbox::{self, Outbox};
use crate::webhook::queue_budget::QueueBudget;
use crate::webhook::{Dispatcher, Sender};
use crate::{emit_api, health, metrics};
use utoipa::OpenApi;

/// Longest wait for open requests to finish after a stop is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connection cap of the admin listener (operators and Prometheus, not clients).
const ADMIN_MAX_CONNECTIONS: usize = 1024;

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store is unreachable or its migrations failed.
    #[error("store {url}: {source}")]
    Store {
        /// The store URL, password redacted.
        url: String,
        /// The error.
        source: StoreError,
    },
    /// A secrets key is unusable.
    #[error("{0}")]
    SecretsKey(admin_api::store::KeyError),
    /// The adapter's service (Redis, or Postgres for the postgres adapter) is unreachable.
    #[error("{adapter} adapter: {reason}")]
    Adapter {
        /// `redis` or `postgres`.
        adapter: &'static str,
        /// The error.
        reason: String,
    },
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A bridge ready to serve: both listeners bound, the store migrated, the catalog loaded.
pub struct Application {
    public: TcpListener,
    admin: TcpListener,
    public_router: Router,
    admin_router: Router,
    admin_token: String,
    store: Store,
    catalog: Catalog,
    dispatcher: Arc<Dispatcher>,
    sockets: Arc<dyn SocketServer>,
    limits: Limits,
    connections: Arc<Connections>,
    stopping: Arc<Stopping>,
    drain: Duration,
}

/// Channel prefix of both adapters, so the bridge's traffic is told apart from other users'.
const ADAPTER_PREFIX: &str = "bridge";
/// Longest wait for the other nodes' answers (listings, acks after their timeout, joins).
const ADAPTER_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// What the application needs of the Socket.IO side, whatever its adapter.
trait SocketServer: Send + Sync {
    /// Closes the transports of this node's clients over `window` (see `socket::handover`).
    fn hand_over(&self, window: Duration, router: Router) -> BoxFuture<'_, ()>;
    /// Closes the server once the clients are gone.
    fn close(&self) -> BoxFuture<'_, ()>;
    /// The catalog version whose namespaces are served.
    fn applied(&self) -> watch::Receiver<i64>;
}

impl<A: Adapter + DefinedAdapter> SocketServer for Gateway<A> {
    fn hand_over(&self, window: Duration, router: Router) -> BoxFuture<'_, ()> {
        Box::pin(async move { Gateway::hand_over(self, window, &router).await })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(Gateway::close(self))
    }

    fn applied(&self) -> watch::Receiver<i64> {
        Gateway::applied(self)
    }
}

impl Application {
    /// Connects the store, applies migrations, loads the catalog and binds both listeners.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = connect_store(&config).await?;
        if !config.bootstrap.is_empty() {
            crate::bootstrap::apply(&store, &config.bootstrap)
                .await
                .map_err(|source| store_error(&config.database_url, source))?;
        }
        let catalog = Catalog::start(store.clone(), config.url_policy)
            .await
            .map_err(|source| store_error(&config.database_url, source))?;
        let counters = Arc::new(Counters::default());
        let admin_token = config.admin_token.clone().unwrap_or_else(generated_token);
        let outbox = Outbox::start(store.clone(), config.outbox.clone(), counters.clone());
        let dispatcher = Arc::new(Dispatcher::new(
            outbox.clone(),
            counters.clone(),
            config.webhook_concurrency,
            Sender::new(config.url_policy),
            QueueBudget::new(config.queue_webhook_bytes, config.queue_total_bytes),
        ));
        outbox::worker::spawn(outbox, dispatcher.clone(), catalog.clone());
        let cluster = Cluster::new(&config.node_id, config.adapter);
        let connections = Arc::new(Connections::default());
        let stopping = Arc::new(Stopping::default());
        let public = PublicSide {
            config: &config,
            parts: Parts {
                catalog: catalog.clone(),
                dispatcher: dispatcher.clone(),
                counters: counters.clone(),
                cluster: cluster.clone(),
                connections: connections.clone(),
                bus: None,
                stopping: stopping.clone(),
            },
            keys: KeyActivity::start(config.api_rate, store.clone()),
            readiness: Readiness {
                store: store.clone(),
                cluster: cluster.clone(),
                stopping: stopping.clone(),
            },
        };
        let (public_router, sockets) = with_adapter(public, &cluster).await?;
        let v2_compat = V2Compat {
            limit: usize::try_from(config.max_payload).unwrap_or(usize::MAX),
            connections: connections.clone(),
        };
        let public_router = public_router
            .layer(middleware::from_fn(crate::socket::owned_request::own_bytes))
            .layer(middleware::from_fn_with_state(v2_compat, fix_v2_connect))
            .layer(middleware::from_fn_with_state(
                Handover {
                    stopping: stopping.clone(),
                    connections: connections.clone(),
                },
                route_sessions,
            ));
        let sync = CatalogSync {
            store: store.clone(),
            applied: sockets.applied(),
        };
        let admin_router = admin_router(&store, &admin_token, counters, &cluster, &config)
            .layer(middleware::from_fn_with_state(sync, read_your_writes));

        let public = bind(&config.listen).await?;
        let admin = bind(&config.admin_listen).await?;
        let app = Self {
            public,
            admin,
            public_router,
            admin_router,
            admin_token,
            store,
            catalog,
            dispatcher,
            sockets,
            limits: config.listen_limits,
            connections,
            stopping,
            drain: config.drain,
        };
        if app.catalog.current().namespaces.is_empty() {
            // A first run: say what makes the bridge useful, since every client is refused. Before
            // the listening line, which stays the last line of the start.
            tracing::info!(
                "no namespaces yet, so clients are refused (`Invalid namespace`): create one \
                 with the admin API (POST http://{}/admin/namespaces with the admin token, see \
                 docs/admin-api.md), declare them in a config file (--config FILE, see \
                 docs/configuration.md), or follow the README's quick start",
                app.admin_addr()
            );
        }
        tracing::info!(
            node = %cluster.node_id,
            adapter = cluster.adapter.as_str(),
            "listening public={} admin={}",
            app.public_addr(),
            app.admin_addr()
        );
        Ok(app)
    }

    /// Address of the public listener.
    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Address of the admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The admin bearer token (configured or generated).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The in-memory catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Serves both listeners until `shutdown` resolves, then hands the clients over to other
    /// nodes over the drain window (`/readyz` answers 503 and new sessions are refused from the
    /// start), lets open requests finish and queued webhook deliveries go out for at most 10 s
    /// each, and releases the durable deliveries it holds.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let sockets = self.sockets.clone();
        let stopping = self.stopping.clone();
        let (drain, router) = (self.drain, self.public_router.clone());
        tokio::spawn(async move {
            shutdown.await;
            stopping.start_draining();
            // The sockets go first: open WebSockets and long-polls would hold the drain open.
            sockets.hand_over(drain, router).await;
            sockets.close().await;
            let _ = stop_tx.send(true);
        });
        let public = listener::serve(
            "public",
            self.public,
            self.public_router,
            self.limits,
            self.connections,
            stop_rx.clone(),
            DRAIN_TIMEOUT,
        );
        let admin_limits = Limits {
            max_connections: self.limits.max_connections.min(ADMIN_MAX_CONNECTIONS),
            ..self.limits
        };
        let admin = listener::serve(
            "admin",
            self.admin,
            self.admin_router,
            admin_limits,
            Arc::new(Connections::default()),
            stop_rx,
            DRAIN_TIMEOUT,
        );
        tokio::join!(public, admin);
        // Deliveries already accepted (and the `$disconnect`s of the closed sockets) go out first.
        let left = self.dispatcher.drain(DRAIN_TIMEOUT).await;
        if left > 0 {
            tracing::warn!(left, "stopping with webhook deliveries still queued");
        }
        // Durable rows still held are released for another process or the next start.
        self.dispatcher.outbox.shutdown(DRAIN_TIMEOUT).await;
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// What the public listener is made of, before the adapter is chosen.
struct PublicSide<'a> {
    config: &'a Config,
    parts: Parts,
    keys: Arc<KeyActivity>,
    readiness: Readiness,
}

type Built = (Router, Arc<dyn SocketServer>);

/// Connects the configured adapter and builds the public side on it: the one place the three
/// adapters part ways; everything below is generic over the adapter.
async fn with_adapter(side: PublicSide<'_>, cluster: &Cluster) -> Result<Built, StartError> {
    let config = side.config;
    match config.adapter {
        AdapterKind::Memory => Ok(side.build::<LocalAdapter>((), None)),
        AdapterKind::Redis => {
            let url = config.redis_url.as_deref().unwrap_or_default();
            let driver = RedisDriver::connect(url, cluster.health.clone())
                .await
                .map_err(|e| adapter_error("redis", e))?;
            let notices = bus::redis_notices(&driver)
                .await
                .map_err(|e| adapter_error("redis", e))?;
            let mut side = side;
            side.parts.bus = Some(Arc::new(driver.clone()));
            let settings = RedisAdapterConfig::new()
                .with_prefix(ADAPTER_PREFIX)
                .with_request_timeout(ADAPTER_REQUEST_TIMEOUT);
            let state = RedisAdapterCtr::new_with_driver(driver, settings);
            Ok(side.build::<CustomRedisAdapter<Emitter, RedisDriver>>(state, Some(notices)))
        }
        AdapterKind::Postgres => {
            let driver = PgDriver::connect(
                &config.database_url,
                &cluster.node_id,
                cluster.health.clone(),
            )
            .await
            .map_err(|e| adapter_error("postgres", e))?;
            let notices = bus::postgres_notices(&driver)
                .await
                .map_err(|e| adapter_error("postgres", e))?;
            let mut side = side;
            side.parts.bus = Some(Arc::new(driver.clone()));
            let settings = PostgresAdapterConfig::new()
                .with_prefix(ADAPTER_PREFIX)
                .with_table_name("bridge_adapter_attachments")
                .with_request_timeout(ADAPTER_REQUEST_TIMEOUT)
                // A stopped node is forgotten after 6 s instead of 60 s, so requests stop
                // waiting for its answers sooner.
                .with_hb_interval(Duration::from_secs(2))
                .with_hb_timeout(Duration::from_secs(6));
            let state = PostgresAdapterCtr::new_with_driver(driver, settings);
            Ok(side.build::<CustomPostgresAdapter<Emitter, PgDriver>>(state, Some(notices)))
        }
    }
}

fn adapter_error(adapter: &'static str, err: impl std::fmt::Display) -> StartError {
    StartError::Adapter {
        adapter,
        reason: err.to_string(),
    }
}

impl PublicSide<'_> {
    /// Socket.IO, the emit API and the probes, on adapter `A`; `notices` are the other nodes'
    /// room changes.
    fn build<A: Adapter + DefinedAdapter>(
        self,
        adapter: A::State,
        notices: Option<bus::Notices>,
    ) -> Built {
        let (socket_layer, gateway) = Gateway::<A>::build(self.config, self.parts, adapter);
        if let Some(notices) = notices {
            gateway.follow_notices(notices);
        }
        let emit_state = EmitState {
            gateway: gateway.clone(),
            keys: self.keys,
        };
        let mut router = Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .with_state(self.readiness)
            .merge(emit_api::router(emit_state));
        if self.config.playground {
            router = router.merge(crate::console::playground());
        }
        let router = router.layer(socket_layer);
        (router, gateway)
    }
}

/// Connects to the store, applies migrations, and reseals stored secrets under the current
/// secrets key (those in plaintext, or sealed with an old key).
pub async fn connect_store(config: &Config) -> Result<Store, StartError> {
    let url = &config.database_url;
    let sealer = config.sealer().map_err(StartError::SecretsKey)?;
    let key_id = sealer.key_id().map(str::to_owned);
    let store = Store::connect(url)
        .await
        .map_err(|e| store_error(url, e))?
        .with_sealer(sealer);
    store.migrate().await.map_err(|e| store_error(url, e))?;
    let resealed = store
        .reseal_secrets()
        .await
        .map_err(|e| store_error(url, e))?;
    if let Some(key) = key_id {
        tracing::info!(key, resealed, "secrets in the store are sealed");
    }
    Ok(store)
}

fn store_error(url: &str, source: StoreError) -> StartError {
    StartError::Store {
        url: admin_api::store::redact_url(url),
        source,
    }
}

fn admin_router(
    store: &Store,
    token: &str,
    counters: Arc<Counters>,
    cluster: &Cluster,
    config: &Config,
) -> Router {
    let openapi = admin_api::routes::openapi_document(vec![EmitDoc::openapi()]);
    let state = AdminState {
        store: store.clone(),
        token: AdminToken::new(token),
        stats: Arc::new(NodeView {
            counters,
            cluster: cluster.clone(),
        }),
        openapi: Arc::new(openapi),
        url_policy: config.url_policy,
    };
    let ops = Router::new()
        .route("/metrics", get(metrics::serve))
        .with_state(metrics::recorder(&cluster.node_id))
        .route("/healthz", get(health::healthz));
    admin_api::router(state)
        .merge(ops)
        .merge(crate::console::dashboard())
}

/// A random admin token, logged once so the operator can use it.
fn generated_token() -> String {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    tracing::warn!(
        admin_token = %token,
        "BRIDGE_ADMIN_TOKEN is not set; generated an admin token for this run"
    );
    token
}

async fn bind(addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.to_owned(),
            source,
        })
}
