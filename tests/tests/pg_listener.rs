//! The Postgres adapter's one listening connection, on a fresh Postgres database: every stream
//! gets its own channels' notifications, streams come and go, and the connection comes back
//! after it is killed, with the channels asked for while it was away.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bridge::cluster::Health;
use bridge::cluster::pg_listener::Listening;
use bridge_tests::db::postgres_server_url;
use bridge_tests::{Engine, fresh_database};
use sqlx::postgres::{PgConnectOptions, PgNotification};
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(10);

async fn next(rx: &mut Receiver<PgNotification>) -> (String, String) {
    let n = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a notification within 10 s")
        .expect("the stream is open");
    (n.channel().to_owned(), n.payload().to_owned())
}

async fn notify(conn: &mut PgConnection, channel: &str, payload: &str) {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(conn)
        .await
        .expect("notify");
}

async fn scalar(conn: &mut PgConnection, sql: String) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .expect("query")
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what} within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn one_connection_serves_every_stream_and_comes_back_after_a_kill() {
    let url = fresh_database(Engine::Postgres).await;
    let db = url.rsplit_once('/').unwrap().1.to_owned();
    let app = format!("listener test {db}");
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .application_name(&app);
    let health = Arc::new(Health::default());
    let listening = Listening::start(options, health.clone());
    let mut queries = PgConnection::connect(&url).await.unwrap();
    let mut server = PgConnection::connect(&postgres_server_url()).await.unwrap();

    // Two streams, each hears its own channels only.
    let mut a = listening.listen(&["a1", "a2"]).await.unwrap();
    let mut b = listening.listen(&["b1"]).await.unwrap();
    notify(&mut queries, "a2", "x").await;
    notify(&mut queries, "b1", "y").await;
    notify(&mut queries, "a1", "z").await;
    assert_eq!(next(&mut a).await, ("a2".into(), "x".into()));
    assert_eq!(next(&mut a).await, ("a1".into(), "z".into()));
    assert_eq!(next(&mut b).await, ("b1".into(), "y".into()));
    let count = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'");
    assert_eq!(scalar(&mut server, count.clone()).await, 1);

    // A dropped stream's channel is forgotten; asked for again, it reaches the new stream.
    drop(b);
    notify(&mut queries, "b1", "lost").await;
    // Notifications of one session arrive in order: once `sync` is here, `lost` was handled.
    notify(&mut queries, "a1", "sync").await;
    assert_eq!(next(&mut a).await, ("a1".into(), "sync".into()));
    let mut b = listening.listen(&["b1"]).await.unwrap();
    notify(&mut queries, "b1", "again").await;
    assert_eq!(next(&mut b).await, ("b1".into(), "again".into()));

    // Killed while the database refuses connections: down, and a new stream is taken on.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS false"
    )))
    .execute(&mut server)
    .await
    .unwrap();
    let kill = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{app}'"
    );
    assert_eq!(scalar(&mut server, kill).await, 1);
    until("the loss is seen", || health.check().is_err()).await;
    let mut c = listening.listen(&["c1"]).await.unwrap();
    assert!(health.check().unwrap_err().contains("postgres adapter"));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS true"
    )))
    .execute(&mut server)
    .await
    .unwrap();
    until("the connection is back", || health.check().is_ok()).await;
    assert_eq!(health.times_lost(), 1);

    // Back on every channel, the one asked for while down included, over one connection.
    for (rx, channel) in [(&mut a, "a1"), (&mut b, "b1"), (&mut c, "c1")] {
        notify(&mut queries, channel, "back").await;
        assert_eq!(next(rx).await, (channel.to_owned(), "back".to_owned()));
    }
    assert_eq!(scalar(&mut server, count).await, 1);
}
