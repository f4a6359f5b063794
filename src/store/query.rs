//! The SQL of an event search, the same for every engine: one statement over the `events`
//! table with the filter's conditions, in the filter's order, at most a page.
//!
//! Pure: builds the text and its arguments, each engine binds and runs it. Only values
//! from closed sets (the status, column names) are written into the text; everything that
//! came from a request is an argument. It must never do I/O.

use super::EventFilter;
use crate::event::Status;

/// An argument of the statement, in placeholder order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
}

/// How an engine writes the placeholders and whether it takes index hints.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The placeholder's prefix before its number: `?` (SQLite) or `$` (PostgreSQL).
    pub placeholder: char,
    /// SQLite's `INDEXED BY`: its planner cannot know that the rare outcomes are rare, so
    /// it is told to use their partial indexes instead of scanning the log newest-first.
    pub index_hints: bool,
}

/// The statement selecting `columns` of the events matching `f`, in its order, at most
/// `limit`.
pub fn events(f: &EventFilter, columns: &str, limit: usize, d: Dialect) -> (String, Vec<Arg>) {
    let index = match (d.index_hints, f.reason.is_some(), f.status.as_deref()) {
        (false, _, _) => "",
        (true, true, _) => " INDEXED BY events_by_reason",
        (true, false, Some("rejected")) => " INDEXED BY events_rejected",
        (true, false, Some("duplicate")) => " INDEXED BY events_duplicate",
        (true, false, Some("handshake")) => " INDEXED BY events_handshake",
        _ => "",
    };
    let mut sql = format!("SELECT {columns} FROM events{index} WHERE 1 = 1");
    // The status is written into the SQL so the partial indexes apply; it comes from the
    // closed `Status` set, never from input text. An unknown status matches nothing.
    if let Some(status) = &f.status {
        match Status::parse(status) {
            Some(s) => sql.push_str(&format!(" AND status = '{}'", s.as_str())),
            None => sql.push_str(" AND 1 = 0"),
        }
    }
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |sql: &mut String, cond: &str, arg: Arg| {
        args.push(arg);
        sql.push_str(&format!(" AND {cond} {}{}", d.placeholder, args.len()));
    };
    let text_filters = [
        ("account =", &f.account),
        ("reason =", &f.reason),
        ("sender =", &f.sender),
        ("source =", &f.source),
        ("event_type =", &f.event_type),
    ];
    for (cond, value) in text_filters {
        if let Some(v) = value {
            push(&mut sql, cond, Arg::Text(v.clone()));
        }
    }
    let int_filters = [
        ("received_at >=", f.since),
        ("received_at <", f.until),
        ("seq <", f.before_seq),
        ("seq >", f.after_seq),
    ];
    for (cond, value) in int_filters {
        if let Some(v) = value {
            push(&mut sql, cond, Arg::Int(v));
        }
    }
    args.push(Arg::Int(limit as i64));
    let order = if f.oldest_first { "ASC" } else { "DESC" };
    sql.push_str(&format!(
        " ORDER BY seq {order} LIMIT {}{}",
        d.placeholder,
        args.len()
    ));
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: Dialect = Dialect {
        placeholder: '$',
        index_hints: false,
    };
    const LITE: Dialect = Dialect {
        placeholder: '?',
        index_hints: true,
    };

    #[test]
    fn input_is_always_an_argument_and_placeholders_count_up() {
        let f = EventFilter {
            account: Some("shop'; DROP TABLE events; --".into()),
            sender: Some("+255".into()),
            since: Some(5),
            before_seq: Some(90),
            limit: 50,
            ..EventFilter::default()
        };
        let (sql, args) = events(&f, "seq", 51, PG);
        assert_eq!(
            sql,
            "SELECT seq FROM events WHERE 1 = 1 AND account = $1 AND sender = $2 \
             AND received_at >= $3 AND seq < $4 ORDER BY seq DESC LIMIT $5"
        );
        assert_eq!(args[0], Arg::Text("shop'; DROP TABLE events; --".into()));
        assert_eq!(args[4], Arg::Int(51));
    }

    #[test]
    fn a_status_is_written_only_from_the_closed_set_and_hints_only_where_taken() {
        let rare = EventFilter {
            status: Some("rejected".into()),
            ..EventFilter::default()
        };
        let (lite, _) = events(&rare, "seq", 1, LITE);
        assert!(
            lite.contains("INDEXED BY events_rejected") && lite.contains("status = 'rejected'")
        );
        let (pg, _) = events(&rare, "seq", 1, PG);
        assert!(!pg.contains("INDEXED BY"));
        let odd = EventFilter {
            status: Some("x' OR '1'='1".into()),
            oldest_first: true,
            ..EventFilter::default()
        };
        let (sql, args) = events(&odd, "seq", 1, LITE);
        assert!(sql.contains("AND 1 = 0") && !sql.contains("'1'='1'"));
        assert!(sql.ends_with("ORDER BY seq ASC LIMIT ?1"));
        assert_eq!(args, [Arg::Int(1)]);
    }
}
