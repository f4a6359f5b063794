//! How this machine runs PostgreSQL for the tests: where the binaries are, which user runs
//! the server (`nobody` when the tests run as root, which PostgreSQL refuses), and the one
//! thread that spawns every postmaster so that it dies with the test process. It finds and
//! spawns; it never decides what a cluster holds or how it is configured.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{OnceLock, mpsc};
use std::thread;

/// What every cluster on this machine is run with, found once per process.
pub(super) struct Host {
    /// The directory of the PostgreSQL server and client binaries.
    pub(super) bin: PathBuf,
    /// The uid and gid of `nobody` when this process is root, which PostgreSQL refuses.
    pub(super) nobody: Option<(u32, u32)>,
    /// Whether `setpriv` (util-linux) is here to set a parent-death signal and switch user.
    setpriv: bool,
}

impl Host {
    /// A command running the server binary `name` (`initdb`, `postgres`): as `nobody` when
    /// this process is root, and killed when this process ends if `dies_with_process`.
    pub(super) fn command(&self, name: &str, dies_with_process: bool) -> Command {
        let program = self.bin.join(name);
        let mut setpriv = Vec::new();
        if let Some((uid, gid)) = self.nobody {
            setpriv.extend([format!("--reuid={uid}"), format!("--regid={gid}")]);
            setpriv.push("--clear-groups".to_owned());
        }
        if dies_with_process && self.setpriv {
            setpriv.extend(["--pdeathsig".to_owned(), "SIGKILL".to_owned()]);
        }
        if setpriv.is_empty() {
            return Command::new(program);
        }
        let mut command = Command::new("setpriv");
        command.args(setpriv).arg(program);
        command
    }
}

/// The host, found on first use.
pub(super) fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let setpriv = Command::new("setpriv")
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success());
        let nobody = (id(&["-u"]) == 0).then(|| {
            assert!(
                setpriv,
                "running as root, which PostgreSQL refuses: `setpriv` (util-linux) is needed \
                 to run it as nobody (apt-get install util-linux)"
            );
            (id(&["-u", "nobody"]), id(&["-g", "nobody"]))
        });
        Host {
            bin: find_bindir(),
            nobody,
            setpriv,
        }
    })
}

/// The PostgreSQL binaries: `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`,
/// else where `initdb` on the PATH really lives; the first that holds `initdb`.
fn find_bindir() -> PathBuf {
    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    let debian = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = (entry.file_name().to_str()?.split('.'))
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin);
    let path = env::var_os("PATH").and_then(|path| {
        let initdb = env::split_paths(&path)
            .map(|dir| dir.join("initdb"))
            .find(|p| p.is_file())?;
        Some(initdb.canonicalize().ok()?.parent()?.to_owned())
    });
    [pg_config, debian, path]
        .into_iter()
        .flatten()
        .find(|bin| bin.join("initdb").is_file())
        .expect(
            "no PostgreSQL server binaries (initdb) via pg_config, /usr/lib/postgresql/*/bin \
             or the PATH: apt-get install postgresql",
        )
}

/// A client tool from the server's directory, unswayed by `PG*` variables of the caller's
/// environment (a `PGSSLMODE` or `PGOPTIONS` meant for another server).
pub(super) fn client(name: &str) -> Command {
    let mut command = Command::new(host().bin.join(name));
    for (key, _) in env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `id` with `args` and parses the number it prints.
fn id(args: &[&str]) -> u32 {
    let output = Command::new("id").args(args).output().expect("run id");
    assert!(
        output.status.success(),
        "id {args:?} failed: is there a user nobody?"
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().expect("id prints a number")
}

/// Spawns `command` from a thread that lives as long as the process. Linux sends the
/// parent-death signal when the thread that spawned a child ends, not the process: a
/// postmaster spawned from a test's own thread would be killed when that test ends.
pub(super) fn spawn_from_keeper(command: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::SyncSender<std::io::Result<Child>>);
    static KEEPER: OnceLock<mpsc::SyncSender<Job>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (jobs, queue) = mpsc::sync_channel::<Job>(0);
        thread::Builder::new()
            .name("pg-keeper".to_owned())
            .spawn(move || {
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the thread that spawns postgres");
        jobs
    });
    let (reply, answer) = mpsc::sync_channel(1);
    keeper
        .send((command, reply))
        .expect("the postgres keeper thread runs");
    answer.recv().expect("the postgres keeper thread answers")
}
