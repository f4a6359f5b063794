//! CPU time per thread, read from `/proc`, so a run can say where its cycles went.
//!
//! Owns reading `/proc/<pid>/task/*/{comm,stat}` and grouping threads by name. The
//! gateway names its threads (`tokio-rt-worker`, `hookgate-writer`, `hookgate-ckpt`),
//! so the suite can print CPU per committed row for each. It must never fail a run: a
//! thread that ends between listing and reading, or a system without `/proc`, reads as
//! no time.

use std::collections::BTreeMap;

/// `/proc` counts CPU time in USER_HZ ticks, which Linux fixes at 100 a second.
const TICKS_PER_SEC: f64 = 100.0;

/// Seconds of CPU (user + system) per thread name, summed over the threads of `pid`.
pub type Usage = BTreeMap<String, f64>;

/// The user and system ticks of one `/proc/.../stat` line, or `None` if it is not one.
/// The name field may hold spaces and parentheses, so fields count from its last `)`.
pub fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// What `pid`'s threads have used so far, by thread name.
pub fn usage(pid: u32) -> Usage {
    let mut by_name = Usage::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue;
        };
        if let Some(t) = ticks(&stat) {
            *by_name.entry(comm.trim().to_owned()).or_default() += t as f64 / TICKS_PER_SEC;
        }
    }
    by_name
}

/// What the whole process `pid` has used so far, in seconds, counting threads that have
/// already ended (the load generator's threads live only as long as a run).
pub fn process(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| ticks(&stat))
        .map_or(0.0, |t| t as f64 / TICKS_PER_SEC)
}

/// What each name used between `before` and `after`.
pub fn since(after: &Usage, before: &Usage) -> Usage {
    after
        .iter()
        .map(|(name, secs)| {
            let earlier = before.get(name).copied().unwrap_or(0.0);
            (name.clone(), (secs - earlier).max(0.0))
        })
        .collect()
}

/// One line: microseconds of CPU per row for each thread name that used any, busiest
/// first, and how many cores all of them kept busy over `secs`.
pub fn per_row(used: &Usage, rows: f64, secs: f64) -> String {
    let mut names: Vec<(&String, &f64)> = used.iter().filter(|(_, s)| **s > 0.0).collect();
    names.sort_by(|a, b| b.1.total_cmp(a.1));
    let parts: Vec<String> = names
        .iter()
        .map(|(name, s)| format!("{name} {:.1}", 1e6 * **s / rows.max(1.0)))
        .collect();
    let total: f64 = used.values().sum();
    format!("{} ({:.2} cores)", parts.join(", "), total / secs.max(1e-9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_count_from_the_last_parenthesis_of_the_name() {
        // Fields 14 and 15 of proc(5): utime 1234, stime 56.
        let plain = "4242 (hookgate-writer) S 1 2 3 4 5 6 7 8 9 10 1234 56 0 0 20 0 1 0";
        assert_eq!(ticks(plain), Some(1290));
        let odd = "77 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0 20 0 1 0";
        assert_eq!(ticks(odd), Some(10));
        assert_eq!(ticks("no name here"), None);
        assert_eq!(ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_is_seen_using_cpu_and_a_difference_never_goes_below_zero() {
        let before = usage(std::process::id());
        assert!(!before.is_empty(), "no threads read from /proc");
        let (mut x, mut after) = (1u64, before.clone());
        let start = std::time::Instant::now();
        // Work until the kernel has counted a tick of it (or give up after 10 s).
        while since(&after, &before).values().sum::<f64>() == 0.0
            && start.elapsed() < std::time::Duration::from_secs(10)
        {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            after = usage(std::process::id());
        }
        assert!(
            since(&after, &before).values().sum::<f64>() > 0.0,
            "{before:?} -> {after:?}"
        );
        assert!(since(&before, &after).values().all(|s| *s == 0.0));
    }

    #[test]
    fn a_process_counts_the_time_of_threads_that_have_ended() {
        let before = process(std::process::id());
        let start = std::time::Instant::now();
        // A thread that works until the kernel has counted ticks of it, then ends.
        let worker = std::thread::spawn(move || {
            let mut x = 1u64;
            while process(std::process::id()) - before < 0.05
                && start.elapsed() < std::time::Duration::from_secs(10)
            {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
        });
        let _ = worker.join();
        assert!(process(std::process::id()) - before >= 0.05);
    }

    #[test]
    fn per_row_lists_the_busiest_first_and_counts_cores() {
        let used: Usage = [
            ("writer".to_owned(), 1.0),
            ("tokio".to_owned(), 2.0),
            ("idle".to_owned(), 0.0),
        ]
        .into();
        assert_eq!(
            per_row(&used, 100_000.0, 2.0),
            "tokio 20.0, writer 10.0 (1.50 cores)"
        );
    }
}
