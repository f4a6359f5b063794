//! `hookgate paths suggest FILE`: the JSONPaths of a sample payload's fields, with the
//! value each extracts and a first guess for the account's paths, without a gateway.
//!
//! Owns reading the sample (a file, or `-` for standard input) and printing
//! [`crate::path_suggest::suggest`]'s answer for a person, or as JSON. It must never
//! guess silently: guesses are printed as such, for the user to copy or not.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::path_suggest::{parse_sample, suggest};

/// `hookgate paths ...`.
#[derive(Debug, Subcommand)]
pub enum PathsCommand {
    /// List the fields of a sample payload (JSON, or a form body) with their JSONPaths
    /// and values, and guess sender, source, event id and event type.
    Suggest {
        /// The sample payload; `-` reads standard input.
        file: PathBuf,
        /// Print the answer as JSON (the shape of `POST /v1/paths/suggest`).
        #[arg(long)]
        json: bool,
    },
}

/// Runs `hookgate paths ...`, returning what to print.
pub fn run(cmd: PathsCommand) -> anyhow::Result<String> {
    let PathsCommand::Suggest { file, json } = cmd;
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the sample from standard input")?;
    } else {
        bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    }
    let sample = parse_sample(&bytes).with_context(|| format!("{}", file.display()))?;
    let found = suggest(&sample);
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&found)?));
    }
    let mut out = String::new();
    let width = found
        .candidates
        .iter()
        .map(|c| c.path.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(out, "{:<width$}  value", "path");
    for c in &found.candidates {
        let _ = writeln!(out, "{:<width$}  {}", c.path, c.value);
    }
    if found.truncated {
        let _ = writeln!(out, "(more fields not listed)");
    }
    if !found.guesses.is_empty() {
        let _ = writeln!(out, "\nguesses (check them before use):");
        for (field, path) in &found.guesses {
            let _ = writeln!(out, "  {field:<10} {path}");
        }
    }
    Ok(out)
}
