//! `hookgate-bench`: the project's benchmark. `suite` runs every scenario of the
//! benchmark against the gateway, a bare hyper server and the Flask + sqlite baseline in
//! one run and prints the table of BENCHMARKS.md; `load` drives any URL; `bare` is the
//! ceiling server; `parse` times the body parse alone. Loopback only: every process it
//! starts listens on 127.0.0.1.

mod bare;
mod cpu;
mod load;
mod parse;
mod postgres;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hookgate::cli::client::HttpClient;
use hyper::Method;
use serde_json::json;

use load::{LoadResult, LoadSpec};

const SECRET: &str = "bench-secret";
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

#[derive(Debug, Parser)]
#[command(name = "hookgate-bench", about = "hookgate's benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run every scenario and print the results table.
    Suite {
        /// The hookgate binary to measure (build it with --release).
        #[arg(long, default_value = "target/release/hookgate")]
        hookgate: PathBuf,
        /// A python with flask and gunicorn installed, for the baseline.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Seconds per measured run.
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Seconds of the soak at half the peak rate.
        #[arg(long, default_value_t = 300)]
        soak_secs: u64,
        /// Rows to fill before timing audit search (0 skips it).
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Leave out PostgreSQL (one node and two nodes on a throw-away server).
        #[arg(long = "no-postgres", action = clap::ArgAction::SetFalse)]
        postgres: bool,
        /// A PostgreSQL server setting for the PostgreSQL scenarios, `name=value`
        /// (repeatable); PostgreSQL's defaults otherwise.
        #[arg(long = "pg-setting")]
        pg_settings: Vec<String>,
    },
    /// Send signed load to a URL's host and path.
    Load {
        /// e.g. 127.0.0.1:8080
        #[arg(long)]
        addr: SocketAddr,
        /// e.g. /hooks/bench
        #[arg(long, default_value = "/hooks/bench")]
        path: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Fixed total rate; omitted means maximum.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 1024)]
        body_bytes: usize,
    },
    /// Run the bare hyper server.
    Bare {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Time the body parse alone: whole, and kept to the paths an account reads.
    Parse {
        /// Interleaved rounds of 5,000 parses each.
        #[arg(long, default_value_t = 20)]
        rounds: u32,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One worker per core, whatever TOKIO_WORKER_THREADS says: that variable tunes the
    // gateway under test, which inherits it, and must not change the load generator.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Bare { listen } => rt.block_on(bare::serve(listen)).context("bare server")?,
        Cmd::Parse { rounds } => parse::run(rounds)?,
        Cmd::Load {
            addr,
            path,
            connections,
            secs,
            rate,
            body_bytes,
        } => {
            let r = rt.block_on(load::run(LoadSpec {
                addr,
                path,
                secret: SECRET.into(),
                connections,
                duration: Duration::from_secs(secs),
                rate,
                body_bytes,
                run_tag: tag(),
            }));
            println!("{}", line("load", &r, None));
        }
        Cmd::Suite {
            hookgate,
            python,
            secs,
            soak_secs,
            rows,
            postgres,
            pg_settings,
        } => rt.block_on(suite(
            hookgate,
            python,
            Duration::from_secs(secs),
            soak_secs,
            rows,
            postgres.then_some(pg_settings),
        ))?,
    }
    Ok(())
}

fn tag() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A child process that is killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Peak and current resident memory in MiB, from /proc.
    fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

async fn wait_until_up(client: &HttpClient, url: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if client.send(Method::GET, url, &[], "").await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not come up within 20s")
}

async fn start_gateway(
    bin: &PathBuf,
    dir: &std::path::Path,
    client: &HttpClient,
) -> anyhow::Result<(Proc, SocketAddr)> {
    start_gateway_on(bin, dir.join("bench.db").as_os_str(), &[], true, client).await
}

/// Starts the gateway on `db` (a file or a `postgres://` URL) with `env` added; creates
/// the bench account when `create` (a second node on a shared database finds it there).
async fn start_gateway_on(
    bin: &PathBuf,
    db: &std::ffi::OsStr,
    env: &[(&str, &str)],
    create: bool,
    client: &HttpClient,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let (public, admin) = (free_addr()?, free_addr()?);
    let child = Command::new(bin)
        .arg("serve")
        .env("HOOKGATE_LISTEN", public.to_string())
        .env("HOOKGATE_ADMIN_LISTEN", admin.to_string())
        .env("HOOKGATE_DB", db)
        .env("HOOKGATE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOOKGATE_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with cargo build --release)",
                bin.display()
            )
        })?;
    let proc = Proc {
        name: "hookgate",
        child,
        addr: public,
    };
    wait_until_up(client, &format!("http://{admin}/healthz")).await?;
    if !create {
        return Ok((proc, admin));
    }
    let spec = json!({
        "name": "bench",
        "signature": {"header": "X-Signature", "prefix": "sha256=", "signed_content": "{timestamp}.{body}",
                      "timestamp_header": "X-Timestamp", "secrets": [SECRET]},
        "paths": {"event_id": "$.id", "sender": "$.customer.phone", "source": "$.order.id"}
    });
    let a = client
        .admin(
            Method::POST,
            &format!("http://{admin}/v1/accounts"),
            ADMIN_TOKEN,
            Some(&spec),
        )
        .await?;
    if a.status != 201 {
        bail!("creating the bench account: {} {:?}", a.status, a.json());
    }
    Ok((proc, admin))
}

fn start_bare(client_addr: SocketAddr) -> anyhow::Result<Proc> {
    let child = Command::new(std::env::current_exe()?)
        .args(["bare", "--listen", &client_addr.to_string()])
        .spawn()?;
    Ok(Proc {
        name: "bare hyper",
        child,
        addr: client_addr,
    })
}

fn start_flask(python: &PathBuf, dir: &std::path::Path, gunicorn: bool) -> anyhow::Result<Proc> {
    let addr = free_addr()?;
    let script_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench");
    let db = dir.join(if gunicorn { "gunicorn.db" } else { "flask.db" });
    let mut cmd = Command::new(python);
    if gunicorn {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        cmd.args([
            "-m",
            "gunicorn",
            "-w",
            &workers.to_string(),
            "-b",
            &addr.to_string(),
            "--log-level",
            "warning",
            "flask_receiver:app",
        ]);
    } else {
        cmd.arg("flask_receiver.py");
    }
    let child = cmd
        .current_dir(&script_dir)
        .env("BENCH_PORT", addr.port().to_string())
        .env("BENCH_DB", db)
        .env("BENCH_SECRET", SECRET)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Proc {
        name: if gunicorn {
            "Flask + sqlite (gunicorn)"
        } else {
            "Flask + sqlite (dev server)"
        },
        child,
        addr,
    })
}

fn line(name: &str, r: &LoadResult, mem: Option<(f64, f64)>) -> String {
    let mem = mem
        .map(|(peak, _)| format!("{peak:.0} MiB"))
        .unwrap_or_else(|| "-".into());
    format!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {mem} |",
        r.rate(),
        r.ms(0.5),
        r.ms(0.99),
        r.ms(0.999),
        r.http_errors,
        r.transport_errors
    )
}

/// The writer's counters from `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct WriterStats {
    rows: f64,
    groups: f64,
    /// Seconds spent executing and committing groups.
    busy: f64,
    /// Groups that took over 2 ms.
    slow: f64,
}

impl WriterStats {
    /// What the counters grew by since `before`.
    fn since(self, before: WriterStats) -> WriterStats {
        WriterStats {
            rows: self.rows - before.rows,
            groups: self.groups - before.groups,
            busy: self.busy - before.busy,
            slow: self.slow - before.slow,
        }
    }
}

async fn writer_stats(client: &HttpClient, admin: SocketAddr) -> WriterStats {
    let text = client
        .admin(
            Method::GET,
            &format!("http://{admin}/metrics"),
            ADMIN_TOKEN,
            None,
        )
        .await
        .map(|a| String::from_utf8_lossy(&a.body).into_owned())
        .unwrap_or_default();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    };
    WriterStats {
        rows: get("hookgate_writer_rows_total "),
        groups: get("hookgate_writer_groups_total "),
        busy: get("hookgate_writer_seconds_total "),
        slow: get("hookgate_writer_group_seconds_count ")
            - get("hookgate_writer_group_seconds_bucket{le=\"0.002\"} "),
    }
}

/// Measures the gateway and says how its writer and each of its threads spent the run
/// (the warm-up left out).
async fn measure_gateway(
    gw: &Proc,
    client: &HttpClient,
    admin: SocketAddr,
    connections: usize,
    secs: Duration,
    rate: Option<f64>,
    body_bytes: usize,
) -> (LoadResult, String) {
    let _ = load::run(spec(gw, connections, WARM_UP, rate, body_bytes)).await;
    let before = writer_stats(client, admin).await;
    let cpu_before = (cpu::usage(gw.child.id()), cpu::process(std::process::id()));
    let started = Instant::now();
    let r = load::run(spec(gw, connections, secs, rate, body_bytes)).await;
    let wall = started.elapsed().as_secs_f64();
    let gateway_cpu = cpu::since(&cpu::usage(gw.child.id()), &cpu_before.0);
    // The whole process: the load generator's threads have ended by now.
    let own_cpu = (cpu::process(std::process::id()) - cpu_before.1).max(0.0);
    let w = writer_stats(client, admin).await.since(before);
    let load_cpu: cpu::Usage = [("load generator".to_owned(), own_cpu)].into();
    let note = format!(
        "writer: {:.1} rows per commit group (one fsync each), busy {:.0}% of the run, {:.1} µs per row, \
         {:.0} groups over 2 ms\n\
         CPU µs per row, by thread: gateway {}; {}",
        w.rows / w.groups.max(1.0),
        100.0 * w.busy / wall.max(1e-9),
        1e6 * w.busy / w.rows.max(1.0),
        w.slow,
        cpu::per_row(&gateway_cpu, w.rows, wall),
        cpu::per_row(&load_cpu, w.rows, wall),
    );
    (r, note)
}

const HEADER: &str = "| target | req/s | p50 ms | p99 ms | p99.9 ms | http errors | transport errors | peak RSS |\n|---|---|---|---|---|---|---|---|";

/// Warm-up before every measured run: connections, caches, the allocator; not counted.
const WARM_UP: Duration = Duration::from_secs(2);

/// The load of one run against `p`.
fn spec(
    p: &Proc,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
    body_bytes: usize,
) -> LoadSpec {
    LoadSpec {
        addr: p.addr,
        path: "/hooks/bench".into(),
        secret: SECRET.into(),
        connections,
        duration,
        rate,
        body_bytes,
        run_tag: tag(),
    }
}

async fn measure(
    p: &Proc,
    connections: usize,
    secs: Duration,
    rate: Option<f64>,
    body_bytes: usize,
) -> LoadResult {
    let _ = load::run(spec(p, connections, WARM_UP, rate, body_bytes)).await;
    load::run(spec(p, connections, secs, rate, body_bytes)).await
}

async fn suite(
    bin: PathBuf,
    python: Option<PathBuf>,
    secs: Duration,
    soak_secs: u64,
    rows: u64,
    postgres: Option<Vec<String>>,
) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let client = HttpClient::default();
    let (gw, admin) = start_gateway(&bin, &dir, &client).await?;
    let bare = start_bare(free_addr()?)?;
    wait_until_up(&client, &format!("http://{}/", bare.addr)).await?;
    let mut baselines = Vec::new();
    if let Some(py) = &python {
        for gunicorn in [true, false] {
            let p = start_flask(py, &dir, gunicorn)?;
            wait_until_up(&client, &format!("http://{}/", p.addr)).await?;
            baselines.push(p);
        }
    }
    println!(
        "machine: {} cores; {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model()
    );
    println!(
        "each run: {}s after a 2s warm-up; load generator on the same machine\n",
        secs.as_secs()
    );

    println!("### 1 KiB bodies, 64 connections, maximum rate\n\n{HEADER}");
    let bare_1k = measure(&bare, 64, secs, None, 1024).await;
    println!("{}", line(bare.name, &bare_1k, None));
    let (gw_1k, note_1k) = measure_gateway(&gw, &client, admin, 64, secs, None, 1024).await;
    println!("{}", line(gw.name, &gw_1k, Some(gw.memory_mib())));
    let mut flask_rates = Vec::new();
    for p in &baselines {
        let r = measure(p, 64, secs, None, 1024).await;
        println!("{}", line(p.name, &r, None));
        flask_rates.push((p.name, r.rate()));
    }
    println!("\n{note_1k}");
    println!(
        "\nhookgate / bare hyper: {:.1}%",
        100.0 * gw_1k.rate() / bare_1k.rate().max(1.0)
    );
    for (name, rate) in &flask_rates {
        println!("hookgate / {name}: {:.0}x", gw_1k.rate() / rate.max(1.0));
    }

    println!("\n### 64 KiB bodies, 64 connections, maximum rate\n\n{HEADER}");
    let bare_64k = measure(&bare, 64, secs, None, 64 * 1024).await;
    println!("{}", line(bare.name, &bare_64k, None));
    let gw_64k = measure(&gw, 64, secs, None, 64 * 1024).await;
    println!("{}", line(gw.name, &gw_64k, Some(gw.memory_mib())));
    println!(
        "\nhookgate / bare hyper: {:.1}%",
        100.0 * gw_64k.rate() / bare_64k.rate().max(1.0)
    );

    println!("\n### 1 KiB bodies, 1 connection (latency of a single sender)\n\n{HEADER}");
    let bare_one = measure(&bare, 1, secs, None, 1024).await;
    println!("{}", line(bare.name, &bare_one, None));
    let (gw_one, note) = measure_gateway(&gw, &client, admin, 1, secs, None, 1024).await;
    println!("{}", line(gw.name, &gw_one, Some(gw.memory_mib())));
    println!("\n{note}");

    println!("\n### 1 KiB bodies, fixed 10,000 requests/s over 64 connections\n\n{HEADER}");
    // The same schedule against the ceiling: what the load generator itself adds.
    let bare_fixed = measure(&bare, 64, secs, Some(10_000.0), 1024).await;
    println!("{}", line(bare.name, &bare_fixed, None));
    let (gw_fixed, note) =
        measure_gateway(&gw, &client, admin, 64, secs, Some(10_000.0), 1024).await;
    println!("{}", line(gw.name, &gw_fixed, Some(gw.memory_mib())));
    println!("\n{note}");

    if soak_secs > 0 {
        let rate = (gw_1k.rate() / 2.0).max(100.0);
        println!(
            "\n### Soak: {soak_secs}s at {rate:.0} requests/s (half the peak), memory every 5s\n"
        );
        let soak = tokio::spawn(load::run(LoadSpec {
            addr: gw.addr,
            path: "/hooks/bench".into(),
            secret: SECRET.into(),
            connections: 64,
            duration: Duration::from_secs(soak_secs),
            rate: Some(rate),
            body_bytes: 1024,
            run_tag: tag(),
        }));
        let mut samples = Vec::new();
        let start = Instant::now();
        while !soak.is_finished() {
            tokio::time::sleep(Duration::from_secs(5)).await;
            samples.push((start.elapsed().as_secs(), gw.memory_mib().1));
        }
        let r = soak.await?;
        println!(
            "{HEADER}\n{}",
            line("hookgate (soak)", &r, Some(gw.memory_mib()))
        );
        let rss: Vec<String> = samples
            .iter()
            .map(|(t, m)| format!("{t}s:{m:.0}"))
            .collect();
        println!("\nRSS MiB over time: {}", rss.join(" "));
        if let (Some(first), Some(last)) = (samples.get(samples.len() / 4), samples.last()) {
            println!(
                "RSS from the first quarter to the end: {:.1} -> {:.1} MiB",
                first.1, last.1
            );
        }
    }

    if rows > 0 {
        audit_at_scale(&gw, admin, &client, rows).await?;
    }
    if let Some(settings) = postgres {
        drop(gw);
        postgres::suite(
            &bin,
            &client,
            secs,
            &settings,
            (gw_1k.rate(), bare_1k.rate()),
        )
        .await?;
    }
    drop(baselines);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn audit_at_scale(
    gw: &Proc,
    admin: SocketAddr,
    client: &HttpClient,
    rows: u64,
) -> anyhow::Result<()> {
    println!("\n### Audit search over {rows} rows\n");
    let start = Instant::now();
    let mut sent = 0;
    while sent < rows {
        let r = load::run(LoadSpec {
            addr: gw.addr,
            path: "/hooks/bench".into(),
            secret: SECRET.into(),
            connections: 64,
            duration: Duration::from_secs(10),
            rate: None,
            body_bytes: 512,
            run_tag: tag(),
        })
        .await;
        sent += r.ok + r.http_errors;
    }
    println!(
        "filled to at least {rows} rows in {:.0}s\n",
        start.elapsed().as_secs_f64()
    );
    // A second of the log written at full rate: what a search by time reads beside its
    // range is what shows.
    let filled = hookgate::clock::now_micros();
    let second = format!(
        "/v1/events?since={}&until={}&limit=50",
        hookgate::clock::format_micros(filled - 6_000_000),
        hookgate::clock::format_micros(filled - 5_000_000)
    );
    println!("| query | ms (median of 5) | rows |\n|---|---|---|");
    let queries = [
        ("newest page (limit 50)", "/v1/events?limit=50".to_owned()),
        (
            "one account, page 2",
            "/v1/events?account=bench&limit=50&cursor=500000".to_owned(),
        ),
        (
            "by sender",
            "/v1/events?sender=%2B255700000042&limit=50".to_owned(),
        ),
        (
            "rejected only (rare)",
            "/v1/events?status=rejected&limit=50".to_owned(),
        ),
        (
            "time range before the log (empty)",
            "/v1/events?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z".to_owned(),
        ),
        ("one second inside the log", second),
        (
            "console: per-account counts, 24 h",
            "/v1/stats/accounts?hours=24".to_owned(),
        ),
        (
            "console: per-minute activity, 1 h",
            "/v1/stats/activity?minutes=60".to_owned(),
        ),
    ];
    for (name, path) in queries {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let a = client
                .admin(
                    Method::GET,
                    &format!("http://{admin}{path}"),
                    ADMIN_TOKEN,
                    None,
                )
                .await?;
            if a.status != 200 {
                bail!("{path}: {}", a.status);
            }
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            let body = a.json();
            found = ["events", "minutes"]
                .iter()
                .find_map(|k| body[*k].as_array().map(Vec::len))
                .or_else(|| body["accounts"].as_object().map(|o| o.len()))
                .unwrap_or(0);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!("| {name} | {:.1} | {found} |", times[2]);
    }
    let t = Instant::now();
    let a = client
        .admin(
            Method::GET,
            &format!("http://{admin}/v1/events/export?format=ndjson"),
            ADMIN_TOKEN,
            None,
        )
        .await?;
    if a.status == 200 {
        let (peak, _) = gw.memory_mib();
        println!(
            "\nexport of every row as NDJSON: {:.1}s, {} MiB, gateway peak RSS {peak:.0} MiB",
            t.elapsed().as_secs_f64(),
            a.body.len() / (1 << 20)
        );
    } else {
        println!("\nexport: not available in this build ({})", a.status);
    }
    let t = Instant::now();
    let v = client
        .admin(
            Method::GET,
            &format!("http://{admin}/v1/audit/verify"),
            ADMIN_TOKEN,
            None,
        )
        .await?;
    let rows = v.json()["logs"][0]["rows"].as_u64().unwrap_or(0);
    println!(
        "hash-chain verification of {rows} event rows: {:.1}s, ok = {}",
        t.elapsed().as_secs_f64(),
        v.json()["ok"]
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("hookgate-bench-{}", tag()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
