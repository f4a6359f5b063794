//! A throw-away PostgreSQL server for the tests, run from the server binaries of Debian's
//! `postgresql` package. One cluster serves the whole test process ([`server`]), started on
//! first use, and every test takes an empty database of its own
//! ([`PgServer::fresh_database`]), so tests run in parallel. A test that stops its server
//! takes a cluster of its own ([`private_server`]), dropped when the test ends.
//!
//! It only ever touches clusters it created, and nothing it starts outlives the test process.
//! The postmaster is spawned through `setpriv --pdeathsig SIGKILL` from a thread that lives as
//! long as the process, so it is killed when the process ends. Each cluster also has a
//! cleaner: a small `sh` blocked reading a pipe that only this process holds. When the pipe
//! closes (the `PgServer` is dropped, or the process ends however it ends) the cleaner kills
//! what is left of the postmaster and removes the cluster's directory. Without `setpriv`
//! (possible only when not root) the cleaner alone stops the server.
//!
//! PostgreSQL refuses to run as root. As root, `initdb` and `postgres` run as `nobody`
//! (`setpriv --reuid --regid --clear-groups`) in a 0755 directory under `/tmp` that `nobody`
//! owns; the client tools (`createdb`, `psql`) run as the current user over TCP.

#[path = "pg/host.rs"]
mod host;

use std::env;
use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use host::{client, host, spawn_from_keeper};

/// The superuser `initdb` creates; every URL names it.
pub const USER: &str = "hookgate";

/// How long a starting server gets before the harness gives up on it.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a starting server's readiness is checked.
const READY_POLL: Duration = Duration::from_millis(10);
/// How many free ports are tried when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;
/// Server settings for tests. `fsync` stays on: the durability tests rely on real commits.
const SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=on",
    "max_connections=300",
    "shared_buffers=128MB",
];
/// Run by `sh` with the cluster's directory as `$1`. It waits until its stdin closes, kills
/// the postmaster if one is still running (recognised by its working directory, which is the
/// data directory) and removes the cluster's directory. Backends exit by themselves once the
/// postmaster is gone; one that is still closing files can make the first `rm` fail.
const CLEANER: &str = r#"
cat >/dev/null
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/cwd")" = "$1/data" ]; then kill -KILL "$pid"; fi
rm -rf -- "$1" 2>/dev/null || rm -rf -- "$1"
"#;

/// The cluster shared by every test in this process, started on first use.
pub fn server() -> &'static PgServer {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    SHARED.get_or_init(|| PgServer::new(|_| Vec::new()))
}

/// A cluster of the caller's own, for a test that stops and starts it; it is shut down and
/// removed when dropped.
pub fn private_server() -> PgServer {
    PgServer::new(|_| Vec::new())
}

/// A private cluster started with `settings` (`name=value`) on top of the tests' own.
#[allow(dead_code)] // the benchmark's
pub fn private_server_with(settings: &[&str]) -> PgServer {
    let settings: Vec<String> = settings.iter().map(|s| (*s).to_owned()).collect();
    PgServer::new(move |_| settings)
}

/// A private cluster that offers TLS (plain TCP stays allowed) with a certificate for
/// 127.0.0.1 only, signed by a certificate authority made for it; the CA's certificate
/// (PEM) is returned beside it. Keys are made by `openssl` for each cluster and removed
/// with it.
#[allow(dead_code)] // the PostgreSQL suite's
pub fn private_tls_server() -> (PgServer, PathBuf) {
    let mut ca = PathBuf::new();
    let server = PgServer::new(|dir| {
        let tls = dir.join("tls");
        fs::create_dir(&tls).expect("create the tls directory");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&tls)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=hookgate test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        fs::write(tls.join("ext"), "subjectAltName=IP:127.0.0.1\n").expect("write ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        fs::set_permissions(tls.join("server.key"), fs::Permissions::from_mode(0o600))
            .expect("chmod server.key");
        if let Some((uid, gid)) = host().nobody {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&tls)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of {} failed", tls.display());
        }
        ca = tls.join("ca.pem");
        vec![
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", tls.join("server.pem").display()),
            format!("ssl_key_file={}", tls.join("server.key").display()),
        ]
    });
    (server, ca)
}

/// Runs `sql` through `psql` against the database at `url`: the unaligned, tuples-only
/// output, or `psql`'s error when it cannot connect or the statement fails.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = client("psql")
        .args([
            "-X",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A PostgreSQL cluster this process created, listening on 127.0.0.1.
pub struct PgServer {
    /// The cluster's files and its cleaner.
    cluster: Cluster,
    /// The TCP port; a restarted server listens on the same one.
    port: u16,
    /// The running postmaster, `None` while stopped.
    postmaster: Mutex<Option<Child>>,
    /// Numbers the databases handed out, so that their names never repeat.
    databases: AtomicU64,
}

impl PgServer {
    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL. Blocks while `createdb` runs.
    pub fn fresh_database(&self) -> String {
        let name = format!("test_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let output = client("createdb")
            .args([
                "-w",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
            ])
            .arg(&name)
            .output()
            .expect("run createdb");
        assert!(
            output.status.success(),
            "createdb {name} on port {} failed: {}",
            self.port,
            String::from_utf8_lossy(&output.stderr)
        );
        self.url(&name)
    }

    /// Stops the server with a fast shutdown (SIGINT: sessions are ended, open transactions
    /// rolled back, committed ones kept) and waits until it has exited. Does nothing when the
    /// server is stopped.
    pub fn stop(&self) {
        // The lock is held until the postmaster has exited, so that a `start` from another
        // thread cannot launch a second one on the same data meanwhile.
        let mut running = lock(&self.postmaster);
        let Some(mut postmaster) = running.take() else {
            return;
        };
        signal(&postmaster, "INT");
        let status = postmaster.wait().expect("wait for postgres to exit");
        assert!(
            status.success(),
            "postgres exited with {status} on a fast shutdown; its log:\n{}",
            self.cluster.log_since(0)
        );
    }

    /// Starts a stopped server again on the same port and data, and waits until it accepts
    /// connections. Does nothing when the server is running.
    pub fn start(&self) {
        let mut postmaster = lock(&self.postmaster);
        if postmaster.is_some() {
            return;
        }
        let Some(child) = self.cluster.launch(self.port) else {
            panic!("port {} was taken while the server was stopped", self.port);
        };
        *postmaster = Some(child);
    }

    /// Creates a cluster, lets `prepare` add files to its directory and name settings of
    /// its own, and starts it on a free port.
    fn new(prepare: impl FnOnce(&Path) -> Vec<String>) -> PgServer {
        let mut cluster = Cluster::create();
        cluster.extra = prepare(&cluster.dir);
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            if let Some(postmaster) = cluster.launch(port) {
                return PgServer {
                    cluster,
                    port,
                    postmaster: Mutex::new(Some(postmaster)),
                    databases: AtomicU64::new(0),
                };
            }
        }
        panic!("no free port for postgres after {PORT_ATTEMPTS} attempts");
    }
}

impl Drop for PgServer {
    /// An immediate shutdown (SIGQUIT): the data is about to be removed, so it skips the
    /// shutdown checkpoint. The cluster's cleaner then removes the directory.
    fn drop(&mut self) {
        if let Some(mut postmaster) = lock(&self.postmaster).take() {
            signal(&postmaster, "QUIT");
            let _ = postmaster.wait();
        }
    }
}

/// A cluster's directory: `data/`, `socket/` and `postgres.log`.
struct Cluster {
    /// The directory, canonical, so that the cleaner can recognise the postmaster by it.
    dir: PathBuf,
    /// The cleaner's stdin; dropping it makes the cleaner remove `dir`.
    cleaner_pipe: Option<ChildStdin>,
    /// The cleaner, waited for on drop so that `dir` is gone when the drop returns.
    cleaner: Child,
    /// Settings of this cluster's own, after the tests' [`SETTINGS`].
    extra: Vec<String>,
}

impl Cluster {
    /// Makes the directory, hands it to the cleaner and runs `initdb` in it.
    fn create() -> Cluster {
        let host = host();
        // As root the cluster is run by `nobody`, who must be able to reach it: /tmp is
        // world-traversable where a TMPDIR may not be.
        let parent = if host.nobody.is_some() {
            PathBuf::from("/tmp")
        } else {
            env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("hookgate-pg-")
            .permissions(fs::Permissions::from_mode(0o755))
            .tempdir_in(&parent)
            .expect("create the cluster directory")
            .keep();
        let dir = dir.canonicalize().expect("canonical cluster directory");
        let mut cleaner = Command::new("sh")
            .args(["-c", CLEANER, "hookgate-pg-cleaner"])
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that a Ctrl-C meant for the test run leaves it to
            // clean up after the run.
            .process_group(0)
            .spawn()
            .expect("start the cluster's cleaner (sh)");
        let cluster = Cluster {
            cleaner_pipe: cleaner.stdin.take(),
            cleaner,
            dir,
            extra: Vec::new(),
        };
        fs::create_dir(cluster.socket()).expect("create the socket directory");
        if let Some((uid, gid)) = host.nobody {
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&cluster.dir)
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown of {} to nobody failed",
                cluster.dir.display()
            );
        }
        let output = host
            .command("initdb", false)
            .current_dir(&cluster.dir)
            .arg("-D")
            .arg(cluster.data())
            .args([
                "--auth=trust",
                "-U",
                USER,
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster
    }

    /// Starts `postgres` on `port` and waits until it accepts connections; `None` when the
    /// port is taken by another process.
    fn launch(&self, port: u16) -> Option<Child> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("open postgres.log");
        let log_start = log.metadata().expect("postgres.log metadata").len();
        let mut command = host().command("postgres", true);
        command
            .current_dir(&self.dir)
            .arg("-D")
            .arg(self.data())
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(self.socket())
            .args(SETTINGS.iter().flat_map(|setting| ["-c", setting]))
            .args(
                self.extra
                    .iter()
                    .flat_map(|setting| ["-c", setting.as_str()]),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("postgres.log handle"))
            .stderr(log);
        let mut postmaster = spawn_from_keeper(command).expect("spawn postgres");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = postmaster.try_wait().expect("postgres status") {
                let log = self.log_since(log_start);
                if log.contains("Address already in use") {
                    return None;
                }
                panic!("postgres exited with {status} while starting; its log:\n{log}");
            }
            if self.says_ready(postmaster.id()) {
                return Some(postmaster);
            }
            if Instant::now() >= deadline {
                let _ = postmaster.kill();
                panic!(
                    "postgres did not accept connections within {READY_TIMEOUT:?}; its log:\n{}",
                    self.log_since(log_start)
                );
            }
            thread::sleep(READY_POLL);
        }
    }

    /// Whether the postmaster with process id `pid` has recorded in its lock file that it
    /// accepts connections: what `pg_ctl start --wait` waits for. A server of another
    /// cluster that answers on the same port does not count.
    fn says_ready(&self, pid: u32) -> bool {
        let Ok(lock_file) = fs::read_to_string(self.data().join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = lock_file.lines().collect();
        lines.first() == Some(&pid.to_string().as_str())
            && lines.get(7).is_some_and(|status| status.trim() == "ready")
    }

    /// The server log from byte `offset` on, for panic messages.
    fn log_since(&self, offset: u64) -> String {
        let log = fs::read(self.log()).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(log.len());
        String::from_utf8_lossy(&log[start..]).into_owned()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("socket")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop(self.cleaner_pipe.take());
        let _ = self.cleaner.wait();
    }
}

/// A port nothing listens on right now. Another process may take it before postgres binds
/// it; the caller then tries another.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Sends `signal` to a postmaster this process spawned and has not yet waited for, so its
/// process id cannot have been reused. `sh`'s own `kill` is used: `procps` may be missing.
fn signal(postmaster: &Child, signal: &str) {
    let status = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "kill", signal])
        .arg(postmaster.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "could not send SIG{signal} to postgres");
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn two_fresh_databases_are_distinct_and_both_reachable() {
    let server = server();
    let first = server.fresh_database();
    let second = server.fresh_database();
    assert_ne!(first, second);
    for url in [&first, &second] {
        assert_eq!(psql(url, "select 1").expect("database reachable"), "1");
    }
    psql(&first, "create table marker (id int)").expect("create a table");
    let absent = psql(&second, "select to_regclass('marker') is null").expect("query");
    assert_eq!(absent, "t", "a table of one database shows in another");
}

#[test]
fn a_stopped_server_refuses_connections_and_starts_again_with_its_data_on_its_port() {
    let server = private_server();
    let port = server.port();
    let url = server.fresh_database();
    psql(
        &url,
        "create table kept (n int); insert into kept values (42)",
    )
    .expect("write");

    server.stop();
    assert!(psql(&url, "select 1").is_err(), "a stopped server answers");

    server.start();
    assert_eq!(server.port(), port);
    assert_eq!(
        psql(&url, "select n from kept").expect("read after start"),
        "42"
    );
}

#[test]
fn a_dropped_private_server_leaves_nothing_behind() {
    let server = private_server();
    let url = server.fresh_database();
    let dir = server.cluster.dir.clone();
    assert!(dir.join("data").is_dir());

    drop(server);
    assert!(psql(&url, "select 1").is_err(), "a dropped server answers");
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[test]
fn the_shared_server_keeps_fsync_on_and_allows_many_connections() {
    let url = server().fresh_database();
    assert_eq!(psql(&url, "show fsync").expect("show fsync"), "on");
    assert_eq!(psql(&url, "show max_connections").expect("show"), "300");
    assert_eq!(psql(&url, "show server_encoding").expect("show"), "UTF8");
}

#[test]
fn fresh_databases_are_made_in_parallel() {
    let urls: Vec<String> = thread::scope(|scope| {
        let makers: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| server().fresh_database()))
            .collect();
        let urls = makers
            .into_iter()
            .map(|maker| maker.join().expect("createdb"));
        urls.collect()
    });
    let mut distinct = urls.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        urls.len(),
        "a database was handed out twice"
    );
    for url in &urls {
        assert_eq!(psql(url, "select 1").expect("database reachable"), "1");
    }
}
