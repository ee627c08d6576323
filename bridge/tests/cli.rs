//! The `bridge` binary as a user runs it: `migrate`, `serve`, the listening line, bad stores.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest a run of the binary that should end by itself may take: it is killed then and the test
/// fails saying so, rather than hanging the suite (a binary that ignores a bad setting and serves).
/// A run takes well under a second; the margin is for a loaded machine.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// `program arg…` of a command, for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a pipe to its end on a thread (so that a full pipe never blocks the child).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// [`Command::output`] bounded by `limit`: past it the child is killed and the test fails with
/// what it printed.
fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("`{what}` was still running after {limit:?} and was killed; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// [`output_within`] with [`RUN_LIMIT`].
fn output(cmd: &mut Command) -> Output {
    output_within(cmd, RUN_LIMIT)
}

/// A child that is killed when the test ends, passed or failed.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn bridge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bridge"));
    cmd.env_clear()
        .env("RUST_LOG", "info")
        .env("BRIDGE_LISTEN", "127.0.0.1:0")
        .env("BRIDGE_ADMIN_LISTEN", "127.0.0.1:0");
    cmd
}

fn temp_db() -> String {
    let path = std::env::temp_dir().join(format!("bridge-cli-{}.db", uuid::Uuid::new_v4()));
    format!("sqlite://{}", path.display())
}

#[test]
fn migrate_applies_and_exits() {
    let db = temp_db();
    let out = output(bridge().arg("migrate").env("DATABASE_URL", &db));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("migrations applied"));
    // The file holds secrets: its owner only may read it, whatever the umask.
    let path = db.trim_start_matches("sqlite://");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{path}: {mode:o}");
}

#[test]
fn unreachable_store_is_one_line_and_non_zero() {
    let out = output(bridge().env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(
        line.contains("127.0.0.1:1") && line.contains("refused"),
        "{line}"
    );
}

#[test]
fn an_unreachable_redis_at_start_is_one_line_and_non_zero() {
    // Port 1: nothing listens there (a privileged port no test or service binds), so the
    // connection is refused, never answered by a server another test started.
    let port = 1;
    // It gives up by itself: the run's bound fails the test if it keeps retrying.
    let out = output(
        bridge()
            .env("DATABASE_URL", temp_db())
            .env("BRIDGE_ADAPTER", "redis")
            .env("REDIS_URL", format!("redis://127.0.0.1:{port}")),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: redis adapter: "), "{stderr}");
}

#[test]
fn bad_config_file_exits_with_usage_error() {
    let out = output(bridge().env("BRIDGE_CONFIG", "/nonexistent/bridge.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn serve_logs_listening_addresses_and_stops_on_sigterm() {
    // `lines` kept to the end: its reader drains stderr, which the node writes to until it exits.
    let Serving {
        mut child,
        lines: _lines,
        seen,
        admin,
    } = serve(bridge().env("DATABASE_URL", temp_db()));
    let listening = seen.last().expect("the listening line");
    assert!(
        listening.starts_with("node=node-"),
        "lines start with the node id: {listening}"
    );
    assert!(
        seen.iter().any(|l| l.contains("generated an admin token")),
        "a generated token is logged with a warning"
    );
    let health = std::net::TcpStream::connect(&admin);
    assert!(
        health.is_ok(),
        "admin listener accepts connections at {admin}"
    );

    let status = output(Command::new("kill").args(["-TERM", &child.0.id().to_string()])).status;
    assert!(status.success());
    // A graceful stop with nothing open takes well under a second; the bound only keeps a stop
    // that hangs from hanging the suite (the guard kills it).
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "graceful exit, got {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running {RUN_LIMIT:?} after SIGTERM; killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The env layer through the real binary (its environment cleared): env beats the file, a flag
/// beats env. `migrate` validates the whole configuration before touching the store.
#[test]
fn env_beats_the_file_and_a_flag_beats_env() {
    let dir = std::env::temp_dir().join(format!("bridge-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bridge.toml");
    let run = |file_payload: &str, env_payload: Option<&str>, flag_payload: Option<&str>| {
        std::fs::write(&file, format!("max_payload = {file_payload}\n")).unwrap();
        let mut cmd = bridge();
        cmd.arg("migrate")
            .env("DATABASE_URL", temp_db())
            .env("BRIDGE_CONFIG", &file);
        if let Some(value) = env_payload {
            cmd.env("BRIDGE_MAX_PAYLOAD", value);
        }
        if let Some(value) = flag_payload {
            cmd.args(["--max-payload", value]);
        }
        let out = output(&mut cmd);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The file alone decides: 0 is refused (exit 2, naming the setting).
    let (code, stderr) = run("0", None, None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("max_payload"), "{stderr}");
    // Env over the file, both ways.
    assert_eq!(run("0", Some("5000"), None).0, Some(0));
    assert_eq!(run("5000", Some("0"), None).0, Some(2));
    // A flag over env, both ways.
    assert_eq!(run("5000", Some("0"), Some("5000")).0, Some(0));
    assert_eq!(run("5000", Some("5000"), Some("0")).0, Some(2));
    std::fs::remove_dir_all(dir).unwrap();
}

/// Bad settings are exit 2 before any side effect: no store file created, no token generated.
#[test]
fn bad_settings_exit_2_before_creating_anything() {
    let dir = std::env::temp_dir().join(format!("bridge-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("bridge.db");
    let cases: [(&str, &str, &str); 5] = [
        ("BRIDGE_LISTEN", "nonsense", "listen"),
        ("BRIDGE_ADMIN_LISTEN", "127.0.0.1:99999", "admin_listen"),
        ("DATABASE_URL", "mysql://localhost/x", "database_url"),
        ("REDIS_URL", "localhost:6379", "redis_url"),
        ("BRIDGE_SECRETS_KEY", "too-short", "secrets_key"),
    ];
    for (name, value, setting) in cases {
        let mut cmd = bridge();
        cmd.current_dir(&dir)
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .env(name, value);
        let out = output(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(setting), "{name}={value}: {stderr}");
        assert!(
            !stderr.contains("token"),
            "{name}={value}: no token generated: {stderr}"
        );
        assert!(!db.exists(), "{name}={value}: the store was created");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// TOML keys are the flag names with `_`: `--log` is `log`.
#[test]
fn the_log_flag_is_the_log_key_in_toml() {
    let dir = std::env::temp_dir().join(format!("bridge-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bridge.toml");
    std::fs::write(&file, "log = \"debug\"\n").unwrap();
    let out = output(
        bridge()
            .env_remove("RUST_LOG")
            .arg("migrate")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("b.db").display()),
            )
            .env("BRIDGE_CONFIG", &file),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("DEBUG"),
        "the file's log level applies: {stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `bridge token` prints, alone on stdout, a token the namespace's own verifier accepts, with the
/// namespace's issuer and audience; namespaces it cannot sign for get a clear error.
#[tokio::test]
async fn token_signs_for_a_shared_secret_namespace() {
    use admin_api::model::{JwtAlgorithm, JwtAuth, Namespace, NamespaceAuth, Timestamp, new_id};
    let db = temp_db();
    let store = admin_api::Store::connect(&db).await.unwrap();
    store.migrate().await.unwrap();
    let jwt = JwtAuth {
        algorithm: JwtAlgorithm::HS384,
        secret: Some("token-test-secret".into()),
        public_key: None,
        jwks_url: None,
        issuer: Some("https://issuer.test".into()),
        audience: Some("bridge-app".into()),
        timeout_ms: 1000,
    };
    for (name, auth) in [
        ("/private", NamespaceAuth::Jwt(jwt.clone())),
        ("/open", NamespaceAuth::None),
    ] {
        let now = Timestamp::now();
        let ns = Namespace {
            id: new_id(),
            name: name.into(),
            auth,
            created_at: now,
            updated_at: now,
        };
        store.create_namespace(&ns).await.unwrap();
    }
    let run = |namespace: &str| {
        output(
            bridge()
                .args(["token", "--namespace", namespace, "--sub", "alice"])
                .args(["--rooms", "r1,r2", "--ttl", "10m"])
                .env("DATABASE_URL", &db),
        )
    };
    let out = run("/private");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token on stdout: {stdout}"
    );
    let identity = bridge::jwt::JwtVerifier::new(&jwt)
        .unwrap()
        .verify(token)
        .await
        .expect("the namespace's verifier accepts it");
    assert_eq!(identity.user_id, "alice");
    assert_eq!(identity.rooms, ["r1", "r2"]);

    for (namespace, says) in [("/open", "takes no token"), ("/nope", "not found")] {
        let out = run(namespace);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{namespace}: {stderr}");
        assert!(stderr.contains(says), "{namespace}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// A value refused by the command line's parser names where it came from: the environment
/// variable when the flag is absent (clap alone names the flag, which the user never typed), the
/// flag when it is given (it beats the variable).
#[test]
fn a_bad_value_names_the_variable_or_the_flag_it_came_from() {
    let db = temp_db();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = bridge();
        cmd.arg("migrate").env("DATABASE_URL", &db).args(args);
        for (name, value) in env {
            cmd.env(name, value);
        }
        let out = output(&mut cmd);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (name, value, flag) in [
        ("BRIDGE_MAX_PAYLOAD", "abc", "--max-payload"),
        ("BRIDGE_PING_INTERVAL_MS", "-1", "--ping-interval-ms"),
        ("BRIDGE_ADAPTER", "nope", "--adapter"),
        ("BRIDGE_PLAYGROUND", "maybe", "--playground"),
    ] {
        let (code, stderr) = run(&[(name, value)], &[]);
        assert_eq!(code, Some(2), "{name}={value}: {stderr}");
        let expected = format!(
            "error: invalid value '{value}' for {name} (the environment variable of {flag})"
        );
        assert!(stderr.starts_with(&expected), "{name}={value}: {stderr}");
    }
    // The flag's value is the one read, whatever the variable holds: the flag is named.
    for args in [&["--max-payload", "abc"][..], &["--max-payload=abc"][..]] {
        for env in ["5000", "xyz"] {
            let (code, stderr) = run(&[("BRIDGE_MAX_PAYLOAD", env)], args);
            assert_eq!(code, Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.starts_with("error: invalid value 'abc' for '--max-payload <MAX_PAYLOAD>'")
                    && !stderr.contains("BRIDGE_MAX_PAYLOAD"),
                "{args:?} with BRIDGE_MAX_PAYLOAD={env}: {stderr}"
            );
        }
    }
}

/// The Postgres server the tests use (`TEST_POSTGRES_URL`, as in the workspace's other tests),
/// without its database: `postgres://user@host:port`.
fn postgres_server() -> String {
    let url = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (base, _) = url
        .rsplit_once('/')
        .expect("a database in TEST_POSTGRES_URL");
    base.to_owned()
}

/// A database name of this run (`bridge_test_<run>_…`, so that `scripts/test` drops it if the test
/// cannot).
fn test_database_name() -> String {
    let run = std::env::var("BRIDGE_TEST_RUN").unwrap_or_else(|_| {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{epoch}_{}", std::process::id())
    });
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("bridge_test_{run}_{}", &unique[..16])
}

/// A new, empty Postgres database of this run; its URL.
async fn fresh_postgres_database() -> String {
    use sqlx::{Connection, Executor};
    let server = postgres_server();
    let name = test_database_name();
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("Postgres must be running for the tests (see CONTRIBUTING.md)");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    format!("{server}/{name}")
}

/// Drops the database of `url` (made by [`fresh_postgres_database`]).
async fn drop_postgres_database(url: &str) {
    use sqlx::{Connection, Executor};
    let (server, name) = url.rsplit_once('/').expect("a database in the URL");
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
}

/// A Postgres database that does not exist is one line in the server's words, without the
/// driver's "error returned from database" and the line of Postgres's C source ("at line 948").
#[test]
fn a_missing_postgres_database_is_one_clean_line() {
    let name = test_database_name();
    let url = format!("{}/{name}", postgres_server());
    let out = output(bridge().arg("migrate").env("DATABASE_URL", &url));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: store postgres://")
            && lines[0].ends_with(&format!(
                "/{name}: database unreachable: database \"{name}\" does not exist"
            )),
        "{stderr}"
    );
}

/// A node that starts on a database another node already migrated logs no Postgres notice
/// (sqlx logs `relation "_sqlx_migrations" already exists, skipping` at INFO otherwise).
#[tokio::test]
async fn a_second_migration_logs_no_postgres_notice() {
    let url = fresh_postgres_database().await;
    let runs: Vec<Output> = (0..2)
        .map(|_| output(bridge().arg("migrate").env("DATABASE_URL", &url)))
        .collect();
    drop_postgres_database(&url).await;
    for (i, out) in runs.iter().enumerate() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {i}: {stderr}");
        assert!(stderr.contains("migrations applied"), "run {i}: {stderr}");
        assert!(
            !stderr.contains("sqlx::postgres::notice") && !stderr.contains("already exists"),
            "run {i}: {stderr}"
        );
    }
}

/// A `serve` run that has logged its listening line; killed when dropped.
struct Serving {
    child: Running,
    lines: mpsc::Receiver<String>,
    /// Every line logged so far.
    seen: Vec<String>,
    /// The admin listener's address.
    admin: String,
}

/// Runs `serve` until its listening line, the last line of its start.
fn serve(cmd: &mut Command) -> Serving {
    let mut child = Running(
        cmd.stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let admin = line
                    .split_once("listening public=")
                    .and_then(|(_, rest)| rest.split_once("admin="))
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .map(str::to_owned);
                seen.push(line);
                if let Some(admin) = admin {
                    return Serving {
                        child,
                        lines,
                        seen,
                        admin,
                    };
                }
            }
            Err(e) => panic!(
                "no listening line within {RUN_LIMIT:?} ({e:?}); stderr:\n{}",
                seen.join("\n")
            ),
        }
    }
}

impl Serving {
    /// Kills the process and returns every line it logged.
    fn kill(mut self) -> Vec<String> {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        // Its stderr closes with it: what it wrote before is all here.
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.seen,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("stderr still open after a kill"),
            }
        }
    }
}

/// Runs `serve` until its listening line and returns every line it logged until then; the process
/// is killed afterwards.
fn serve_until_listening(cmd: &mut Command) -> Vec<String> {
    serve(cmd).seen
}

/// POSTs a JSON `body` to the admin API at `addr`; the answer's status code.
fn admin_post(addr: &str, token: &str, path: &str, body: &str) -> u16 {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(RUN_LIMIT)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {answer}"))
}

/// The Postgres adapter creates its attachments table (`CREATE TABLE IF NOT EXISTS`) for every
/// namespace, which found it there made Postgres send a NOTICE that sqlx logs at INFO: on every
/// start after the first, and for every namespace after the first. No node logs one.
#[tokio::test]
async fn nodes_on_the_postgres_adapter_log_no_postgres_notice() {
    let url = fresh_postgres_database().await;
    let mut logs = Vec::new();
    for node in 0..2 {
        let serving = serve(
            bridge()
                .env("DATABASE_URL", &url)
                .env("BRIDGE_ADAPTER", "postgres")
                .env("BRIDGE_ADMIN_TOKEN", "cli-test-token"),
        );
        // A creation answers once this node serves the namespace, its adapter (and so its
        // table) set up: anything that logged is in stderr by then.
        let body = format!(r#"{{"name": "/room{node}"}}"#);
        let status = admin_post(&serving.admin, "cli-test-token", "/admin/namespaces", &body);
        logs.push((status, serving.kill().join("\n")));
    }
    drop_postgres_database(&url).await;
    for (node, (status, log)) in logs.iter().enumerate() {
        assert_eq!(*status, 201, "node {node}: {log}");
        assert!(
            !log.contains("sqlx::postgres::notice") && !log.contains("already exists"),
            "node {node}: {log}"
        );
    }
}

/// A bridge with no namespaces says at start what to do next; `/`, which it keeps for v2 clients
/// but refuses to v3/v4 ones while the store lacks it, is logged as registered only once the
/// store has it. Both are said before the listening line.
#[test]
fn a_first_start_says_what_to_do_next_and_root_is_logged_only_when_declared() {
    let lines = serve_until_listening(bridge().env("DATABASE_URL", temp_db()));
    let log = lines.join("\n");
    let hint = lines
        .iter()
        .find(|l| l.contains("no namespaces yet"))
        .unwrap_or_else(|| panic!("a hint for a bridge without namespaces:\n{log}"));
    for says in [
        "Invalid namespace",
        "/admin/namespaces",
        "docs/admin-api.md",
        "--config",
        "docs/configuration.md",
        "quick start",
    ] {
        assert!(hint.contains(says), "the hint mentions {says}: {hint}");
    }
    assert!(!log.contains("namespace registered"), "{log}");

    let dir = std::env::temp_dir().join(format!("bridge-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bridge.toml");
    std::fs::write(
        &file,
        "[[namespaces]]\nname = \"/\"\n\n[[namespaces]]\nname = \"/chat\"\n",
    )
    .unwrap();
    let lines = serve_until_listening(
        bridge()
            .env("DATABASE_URL", temp_db())
            .env("BRIDGE_CONFIG", &file),
    );
    let log = lines.join("\n");
    for ns in ["/", "/chat"] {
        let registered = format!("namespace registered namespace=\"{ns}\"");
        assert_eq!(
            lines.iter().filter(|l| l.contains(&registered)).count(),
            1,
            "{registered} once:\n{log}"
        );
    }
    assert!(!log.contains("no namespaces yet"), "{log}");
    std::fs::remove_dir_all(dir).unwrap();
}
