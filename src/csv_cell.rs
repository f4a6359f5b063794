//! Spreadsheet-safe CSV cells: a cell that a spreadsheet would read as a formula is
//! neutralised before it is written, so an exported audit log opened in Excel, LibreOffice
//! or Google Sheets never runs what a sender put in a header, a path or a field.
//!
//! Owns [`neutralise`], a pure function of one cell's text. A cell that begins with `=`,
//! `+`, `-`, `@`, a tab or a carriage return (or their full-width forms, which some
//! spreadsheets also accept) gets a leading `'`, which spreadsheets read as "text" and do
//! not show; a plain number (`-12.5`, `+3`) is left alone, since it cannot be a formula.
//! It must never change a cell that does not begin with one of those characters, and
//! never drop or reorder characters: the original is the cell without its first `'`.

use std::borrow::Cow;

/// The characters that make a spreadsheet read a cell as a formula when they begin it.
const TRIGGERS: &[char] = &[
    '=', '+', '-', '@', '\t', '\r', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// `cell` as it may be written to a CSV export: unchanged, or with a leading `'` when a
/// spreadsheet would take it for a formula.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some(first) if TRIGGERS.contains(&first) && !is_plain_number(cell) => {
            Cow::Owned(format!("'{cell}"))
        }
        _ => Cow::Borrowed(cell),
    }
}

/// A signed decimal number (`-12`, `+3.50`, `-1e5`): what a spreadsheet reads as a value.
fn is_plain_number(cell: &str) -> bool {
    let digits = cell.strip_prefix(['-', '+']).unwrap_or(cell);
    let (mantissa, exponent) = match digits.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (digits, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty()
        && all_digits(whole)
        && all_digits(fraction)
        && exponent.is_none_or(|e| !e.is_empty() && all_digits(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_get_a_leading_quote_and_the_original_is_kept_after_it() {
        for cell in [
            "=HYPERLINK(\"http://evil\",\"x\")",
            "+1+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A2)",
            "\t=1",
            "\r=1",
            "=",
            "-",
            "\u{FF1D}1+1",
            "-1e",
            "--5",
            "+.5",
        ] {
            let safe = neutralise(cell);
            assert_eq!(safe, format!("'{cell}"), "{cell:?}");
            assert_eq!(&safe[1..], cell, "nothing else changes");
        }
    }

    #[test]
    fn ordinary_cells_and_plain_numbers_are_unchanged() {
        for cell in [
            "",
            "ev_1",
            "a=b",
            " =1",
            "'quoted",
            "{\"id\":\"x\"}",
            "2026-12-07T10:00:00Z",
            "-12",
            "+3.50",
            "-1e5",
            "-0.25E-3",
        ] {
            assert!(
                matches!(neutralise(cell), Cow::Borrowed(c) if c == cell),
                "{cell:?}"
            );
        }
    }
}
