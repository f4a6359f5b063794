//! `hookgate-bench parse`: the body parse on its own, whole against kept to the account's
//! plain paths (`strict_json::from_slice_keeping`), on the load's own 1 KiB body and on a
//! 6 KB payload shaped like a repository push event (many fields, nested objects, arrays).
//! CPU only: no sockets, no disk. Both forms run in the same process, interleaved, and the
//! figures to compare are the ratios.

use std::time::Instant;

use hookgate::strict_json::{Keep, Step, from_slice, from_slice_keeping};
use serde_json::{Map, Value, json};

/// A push-like event of about 6 KB.
fn push_event() -> String {
    let mut repository = Map::new();
    for i in 0..80 {
        repository.insert(
            format!("field_{i}"),
            json!(format!("https://api.example.com/repos/octo/hello/{i}")),
        );
    }
    let commits: Vec<Value> = (0..5)
        .map(|i| {
            json!({
                "id": format!("{i:040}"), "message": "fix the thing",
                "author": {"name": "Octo", "email": "octo@example.com", "username": "octo"},
                "added": ["a.rs", "b.rs"], "removed": [], "modified": ["c.rs"],
                "timestamp": "2026-11-22T02:00:00Z", "url": "https://example.com/commit/abc"
            })
        })
        .collect();
    json!({
        "ref": "refs/heads/main", "before": "0".repeat(40), "after": "1".repeat(40),
        "repository": repository, "commits": commits,
        "sender": {"login": "octo", "id": 1, "type": "User", "site_admin": false}
    })
    .to_string()
}

fn keep(paths: &[&[Step<'_>]]) -> Keep {
    let mut keep = Keep::default();
    for p in paths {
        keep.add(p.iter().copied());
    }
    keep
}

/// Microseconds per parse of `body`, whole and kept, over `rounds` interleaved rounds.
fn measure(body: &[u8], kept: &Keep, rounds: u32) -> anyhow::Result<(f64, f64)> {
    const N: u32 = 5_000;
    let (mut whole, mut pruned) = (0.0, 0.0);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(from_slice(std::hint::black_box(body))?);
        }
        whole += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(from_slice_keeping(std::hint::black_box(body), kept)?);
        }
        pruned += t.elapsed().as_secs_f64();
    }
    let per = 1e6 / f64::from(N * rounds);
    Ok((whole * per, pruned * per))
}

/// Prints the table.
pub fn run(rounds: u32) -> anyhow::Result<()> {
    let spec = crate::load::LoadSpec {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        path: String::new(),
        secret: crate::SECRET.into(),
        connections: 1,
        duration: std::time::Duration::ZERO,
        rate: None,
        body_bytes: 1024,
        run_tag: "parse".into(),
    };
    let load_body = crate::load::signed_body(&spec, 0, 1);
    let bench_keep = keep(&[
        &[Step::Key("id")],
        &[Step::Key("customer"), Step::Key("phone")],
        &[Step::Key("order"), Step::Key("id")],
    ]);
    let push = push_event();
    let push_keep = keep(&[
        &[Step::Key("after")],
        &[Step::Key("sender"), Step::Key("login")],
        &[Step::Key("repository"), Step::Key("field_3")],
    ]);
    println!("| body | bytes | whole µs | kept µs | kept / whole |");
    println!("|---|---|---|---|---|");
    for (name, body, kept) in [
        ("load body (1 KiB)", &load_body[..], &bench_keep),
        ("push event", push.as_bytes(), &push_keep),
    ] {
        let (whole, pruned) = measure(body, kept, rounds.max(1))?;
        println!(
            "| {name} | {} | {whole:.2} | {pruned:.2} | {:.2} |",
            body.len(),
            pruned / whole
        );
    }
    Ok(())
}
