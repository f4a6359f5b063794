#!/usr/bin/env bash
# Runs hookgate's whole benchmark: builds the release binaries, installs the Flask +
# gunicorn baseline from PyPI into a virtualenv under target/, and prints the tables of
# BENCHMARKS.md. Everything listens on 127.0.0.1. Pass options through, e.g.
#   bench/run.sh --secs 5 --soak-secs 30 --rows 100000     (a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet flask gunicorn
fi
exec target/release/hookgate-bench suite --hookgate target/release/hookgate --python "$PWD/$venv/bin/python" "$@"
