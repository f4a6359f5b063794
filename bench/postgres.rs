//! The PostgreSQL scenarios of the suite: one gateway node, and two nodes on one database,
//! on a throw-away PostgreSQL server started for the run (the same one the tests start),
//! with the CPU each process spent per committed event.
//!
//! Owns these scenarios only; the load generator, the gateway's start and the table's
//! lines are the suite's. It must never leave the server running after the run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hookgate::cli::client::HttpClient;

use super::load::{self, LoadResult, LoadSpec};
use super::{HEADER, Proc, SECRET, WARM_UP, line, start_gateway_on, tag};

#[allow(dead_code)]
#[path = "../tests/it/pg.rs"]
mod pg;

/// The seal key every bench node shares (base64 of 32 bytes).
const KEY: &str = "aG9va2dhdGUtYmVuY2gtc2VhbC1rZXktMzItYnl0ZXM=";

fn spec(p: &Proc, connections: usize, secs: Duration, rate: Option<f64>) -> LoadSpec {
    LoadSpec {
        addr: p.addr,
        path: "/hooks/bench".into(),
        secret: SECRET.into(),
        connections,
        duration: secs,
        rate,
        body_bytes: 1024,
        run_tag: tag(),
    }
}

/// CPU seconds used so far by every process named `postgres` (the server and its
/// backends), and by each gateway node.
fn cpu(nodes: &[&Proc]) -> (f64, Vec<f64>) {
    let mut server = 0.0;
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let path = p.path();
            let named =
                std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == "postgres");
            if named && let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
                server += super::cpu::ticks(&stat).map_or(0.0, |t| t as f64 / 100.0);
            }
        }
    }
    let nodes = nodes
        .iter()
        .map(|n| super::cpu::process(n.child.id()))
        .collect();
    (server, nodes)
}

/// Runs the load against every node at once (the connections and any fixed rate split
/// evenly) and merges what they saw; prints the CPU per committed event of each process.
async fn measure(
    nodes: &[&Proc],
    connections: usize,
    secs: Duration,
    rate: Option<f64>,
) -> (LoadResult, String) {
    let share = |total: f64| total / nodes.len() as f64;
    let per = connections / nodes.len();
    let warm: Vec<_> = nodes
        .iter()
        .map(|n| load::run(spec(n, per, WARM_UP, rate.map(share))))
        .collect();
    futures_join(warm).await;
    let before = cpu(nodes);
    let started = Instant::now();
    let runs: Vec<_> = nodes
        .iter()
        .map(|n| load::run(spec(n, per, secs, rate.map(share))))
        .collect();
    let results = futures_join(runs).await;
    let wall = started.elapsed().as_secs_f64();
    let after = cpu(nodes);
    let mut merged = results[0].clone();
    for r in &results[1..] {
        merged.ok += r.ok;
        merged.http_errors += r.http_errors;
        merged.transport_errors += r.transport_errors;
        let _ = merged.latency.add(&r.latency);
    }
    merged.elapsed = Duration::from_secs_f64(wall);
    let events = merged.ok.max(1) as f64;
    let mut note = format!(
        "CPU µs per committed event: PostgreSQL (every backend) {:.1}",
        1e6 * (after.0 - before.0) / events
    );
    for (i, (a, b)) in after.1.iter().zip(&before.1).enumerate() {
        note.push_str(&format!("; node {} {:.1}", i + 1, 1e6 * (a - b) / events));
    }
    (merged, note)
}

async fn futures_join<F: std::future::Future<Output = LoadResult> + Send + 'static>(
    runs: Vec<F>,
) -> Vec<LoadResult> {
    let handles: Vec<_> = runs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap_or_else(|_| LoadResult::empty()));
    }
    out
}

/// One node, then two, on one PostgreSQL started with `settings` beside the tests' own;
/// `sqlite` and `bare` are the SQLite gateway's and bare hyper's rates at 64 connections
/// earlier in the same run.
pub async fn suite(
    bin: &PathBuf,
    client: &HttpClient,
    secs: Duration,
    settings: &[String],
    (sqlite, bare): (f64, f64),
) -> anyhow::Result<()> {
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    if !settings.is_empty() {
        println!(
            "
PostgreSQL settings: {}",
            settings.join(", ")
        );
    }
    let server = pg::private_server_with(&settings);
    let url = server.fresh_database();
    let env = [("HOOKGATE_SECRET_KEY", KEY)];
    let (one, _) = start_gateway_on(bin, url.as_ref(), &env, true, client).await?;
    println!("\n### PostgreSQL: 1 KiB bodies, 64 connections, maximum rate\n\n{HEADER}");
    let (r1, note1) = measure(&[&one], 64, secs, None).await;
    println!(
        "{}",
        line(
            "hookgate on PostgreSQL, 1 node",
            &r1,
            Some(one.memory_mib())
        )
    );
    let (two, _) = start_gateway_on(bin, url.as_ref(), &env, false, client).await?;
    let (r2, note2) = measure(&[&one, &two], 64, secs, None).await;
    println!("{}", line("hookgate on PostgreSQL, 2 nodes", &r2, None));
    println!("\n1 node: {note1}\n2 nodes: {note2}");
    println!(
        "\n1 node / SQLite: {:.1}%; 2 nodes / SQLite: {:.1}%; 2 nodes / bare hyper: {:.1}%",
        100.0 * r1.rate() / sqlite.max(1.0),
        100.0 * r2.rate() / sqlite.max(1.0),
        100.0 * r2.rate() / bare.max(1.0)
    );
    println!("\n### PostgreSQL: fixed 5,000 events/s over 64 connections\n\n{HEADER}");
    let (f1, _) = measure(&[&one], 64, secs, Some(5_000.0)).await;
    println!("{}", line("1 node", &f1, None));
    let (f2, _) = measure(&[&one, &two], 64, secs, Some(5_000.0)).await;
    println!("{}", line("2 nodes", &f2, None));
    drop((one, two));
    drop(server);
    Ok(())
}
