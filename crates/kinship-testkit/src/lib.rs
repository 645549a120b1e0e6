//! Real servers for the integration tests: a PostgreSQL cluster and a NATS server with
//! JetStream, each started from the Debian packages' binaries on a free loopback port and
//! stopped when the test process ends.
//!
//! The backend switch: with `KINSHIP_TEST_BACKEND=postgres`, [`database_for`] hands each
//! test a fresh PostgreSQL database instead of a SQLite file, so one suite runs on both.
//! `KINSHIP_TEST_POSTGRES_URL` points the tests at an existing server instead of starting
//! one (its user must be allowed to create databases).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where a test's store lives: a SQLite file in its data directory, or a PostgreSQL URL.
pub fn database_for(data_dir: &Path) -> String {
    if postgres_backend() {
        fresh_database()
    } else {
        data_dir.join("kinship.sqlite").display().to_string()
    }
}

/// Whether this run tests the PostgreSQL backend (`KINSHIP_TEST_BACKEND=postgres`).
pub fn postgres_backend() -> bool {
    std::env::var("KINSHIP_TEST_BACKEND").is_ok_and(|b| b.eq_ignore_ascii_case("postgres"))
}

/// A new, empty database on the test PostgreSQL server; returns its URL.
pub fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = postgres_server();
    let name = format!("kinship_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut admin = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL server {server}: {e}"));
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    format!("{server}/{name}")
}

/// The base URL (without a database name) of the test PostgreSQL server, started on first use.
pub fn postgres_server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("KINSHIP_TEST_POSTGRES_URL") {
        Ok(url) => url.trim_end_matches('/').to_string(),
        Err(_) => start_postgres(),
    })
}

/// The directory holding PostgreSQL's server binaries (`initdb`, `postgres`).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb): `apt-get install postgresql`, or run ./scripts/test")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// Runs a program, as the `postgres` user when we are root (PostgreSQL refuses root).
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A PostgreSQL server that accepts TLS, with a certificate for `127.0.0.1` and `localhost`
/// signed by a test CA, started on first use: (base URL, the CA's PEM file).
pub fn postgres_server_with_tls() -> &'static (String, PathBuf) {
    static SERVER: OnceLock<(String, PathBuf)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let certs = tempfile::Builder::new().prefix("kinship-pg-tls-").tempdir().expect("a directory for certificates").keep();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(&certs).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        new_ca(&certs, "kinship test CA");
        openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
        std::fs::write(certs.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&certs).status().is_ok_and(|s| s.success());
            assert!(ok, "chown {} to the postgres user", certs.display());
        }
        let key = certs.join("server.key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let settings = format!("-c ssl=on -c ssl_cert_file='{}' -c ssl_key_file='{}'", certs.join("server.crt").display(), key.display());
        (start_postgres_with(&settings), certs.join("ca.crt"))
    })
}

/// A self-signed certificate authority in `dir`: `ca.key` and `ca.crt` (PEM), named `name`.
pub fn new_ca(dir: &Path, name: &str) -> PathBuf {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj"])
        .arg(format!("/CN={name}"))
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    dir.join("ca.crt")
}

fn start_postgres() -> String {
    start_postgres_with("")
}

/// Starts a cluster with extra `postgres` settings (`-c name=value ...`).
fn start_postgres_with(settings: &str) -> String {
    let bin = postgres_bin();
    let dir = tempfile::Builder::new().prefix("kinship-pg-").tempdir().expect("a directory for the cluster").keep();
    if is_root() {
        let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().is_ok_and(|s| s.success());
        assert!(ok, "chown {} to the postgres user", dir.display());
    }
    let data = dir.join("data");
    let out = as_server_user(&bin.join("initdb"))
        .args(["--auth=trust", "--username=kinship", "--encoding=UTF8", "--locale=C", "-D"])
        .arg(&data)
        .output()
        .expect("initdb runs");
    assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    // The server is a test fixture: durability settings off for speed. A watchdog stops it
    // and removes its files when this test process ends, however it ends.
    let script = format!(
        "'{postgres}' -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300 -c shared_buffers=256MB {settings} >'{dir}/log' 2>&1 & pg=$!; \
         while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done; kill -INT $pg 2>/dev/null; wait $pg; rm -rf '{dir}'",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    let mut watchdog = as_server_user(Path::new("/bin/sh"))
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the PostgreSQL server starts");
    // Reaped if it ends before the tests do (the server failed to start).
    std::thread::spawn(move || watchdog.wait());
    let url = format!("postgres://kinship@127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match postgres::Client::connect(&format!("{url}/postgres"), postgres::NoTls) {
            Ok(_) => return url,
            Err(e) if Instant::now() > deadline => {
                let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                panic!("the test PostgreSQL server did not accept connections within 60 s: {e}\n{log}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A NATS server with JetStream on a free loopback port, killed when dropped.
pub struct NatsServer {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Self {
        let program = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("nats-server is not installed: `apt-get install nats-server`, or run ./scripts/test"));
        let dir = tempfile::tempdir().expect("a directory for JetStream");
        let port = free_port();
        let child = Command::new(program)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        NatsServer { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
