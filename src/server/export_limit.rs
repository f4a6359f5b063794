//! `limit` on an export: the stream of NDJSON or CSV chunks cut after the first N records
//! (the N oldest, as an export runs oldest first).
//!
//! Owns counting records in bytes as they pass: a record ends at a newline, and in CSV
//! only at one outside a quoted field (a body may hold newlines); the CSV header is not
//! a record. It must never cut a record in half, and it stops the export's reader (by
//! dropping its channel) once the limit is reached.

use bytes::Bytes;
use tokio::sync::mpsc;

/// Counts records through successive chunks.
#[derive(Debug, Clone)]
pub struct RecordLimit {
    left: u64,
    csv: bool,
    in_quotes: bool,
    header_left: bool,
}

impl RecordLimit {
    /// At most `limit` records; `csv` when the stream is CSV with a header line.
    pub fn new(limit: u64, csv: bool) -> RecordLimit {
        RecordLimit {
            left: limit,
            csv,
            in_quotes: false,
            header_left: csv,
        }
    }

    /// How many bytes of `chunk` to pass on, and whether the limit is reached with them.
    pub fn take(&mut self, chunk: &[u8]) -> (usize, bool) {
        if self.left == 0 && !self.header_left {
            return (0, true);
        }
        for (i, b) in chunk.iter().enumerate() {
            match b {
                b'"' if self.csv => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => {
                    if self.header_left {
                        self.header_left = false;
                    } else {
                        self.left = self.left.saturating_sub(1);
                    }
                    if self.left == 0 && !self.header_left {
                        return (i + 1, true);
                    }
                }
                _ => {}
            }
        }
        (chunk.len(), false)
    }
}

/// Passes on `rx`'s chunks up to the limit, then ends the stream.
pub fn limited(
    mut rx: mpsc::Receiver<Result<Bytes, String>>,
    mut limit: RecordLimit,
) -> mpsc::Receiver<Result<Bytes, String>> {
    let (tx, out) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let (keep, done) = limit.take(&chunk);
            if keep > 0 && tx.send(Ok(chunk.slice(..keep))).await.is_err() {
                return;
            }
            if done {
                // Dropping `rx` stops the export's reader at its next chunk.
                return;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str, limit: u64, csv: bool, chunk: usize) -> String {
        let mut l = RecordLimit::new(limit, csv);
        let mut out = String::new();
        for piece in text.as_bytes().chunks(chunk) {
            let (keep, done) = l.take(piece);
            out.push_str(&String::from_utf8_lossy(&piece[..keep]));
            if done {
                break;
            }
        }
        out
    }

    #[test]
    fn ndjson_is_cut_after_n_lines_across_any_chunking() {
        let text = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n";
        for chunk in [1, 3, 7, 100] {
            assert_eq!(cut(text, 2, false, chunk), "{\"a\":1}\n{\"a\":2}\n");
            assert_eq!(cut(text, 5, false, chunk), text);
        }
    }

    #[test]
    fn csv_keeps_its_header_and_counts_quoted_newlines_as_part_of_a_record() {
        let text = "id,body\nevt_1,\"line one\nline \"\"two\"\"\"\nevt_2,x\nevt_3,y\n";
        for chunk in [1, 4, 100] {
            assert_eq!(
                cut(text, 2, true, chunk),
                "id,body\nevt_1,\"line one\nline \"\"two\"\"\"\nevt_2,x\n"
            );
        }
    }
}
