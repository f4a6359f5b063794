//! A thin SQLite VFS for the writer's connection that turns a commit's WAL appends into one
//! `pwrite`.
//!
//! SQLite writes each WAL frame as two calls, a 24-byte header and then the page, so a
//! group that dirtied a hundred pages costs two hundred system calls, each touching one or
//! two page-cache pages of a file it is writing front to back. This layer keeps contiguous
//! WAL writes in memory and hands them to the operating system at once when SQLite next
//! does anything else with the file: before every `xSync` (so a commit's fsync covers the
//! same bytes as before), and before any read, size query, truncation, file control or
//! close. Everything else, every other file, and every other connection go straight to
//! the platform's own VFS, which this one wraps.
//!
//! It also syncs the WAL with `fdatasync` instead of `fsync`. The SQLite that rusqlite
//! bundles is built without `HAVE_FDATASYNC`, so each commit's sync also wrote the file's
//! inode (its modification time changes with every write): a second synchronous disk
//! write per commit that durability does not need. `fdatasync` still writes the file's
//! size and block map when they change. The first sync of each open WAL file goes to the
//! wrapped VFS as before, which also syncs the directory of a newly created WAL.
//!
//! It is a crate of its own so that hookgate itself can keep `#![forbid(unsafe_code)]`:
//! this is all of the project's `unsafe` code. Besides [`sync_database_file`] (SQLite's own
//! sync of a connection's database file, for the checkpointer), its one entry point,
//! [`open`], returns a connection in WAL mode with `synchronous=FULL`, and that setting
//! must stay: the layer
//! relies on the `xSync` SQLite issues at every commit, before it publishes the commit's
//! frames in the WAL index. Nothing is acknowledged by SQLite before that `xSync`, which
//! flushes first; a flush that fails fails the `xSync`, and SQLite rolls the transaction
//! back. Readers on other connections only read frames published in the index, so they
//! never look for bytes still held here. Under `synchronous=NORMAL` (no `xSync` at commit)
//! they would, and fail with I/O errors: that is why the setting is not the caller's.

use std::ffi::{CStr, c_int, c_void};
use std::mem::ManuallyDrop;
use std::path::Path;
use std::ptr;
use std::sync::OnceLock;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, ffi};

/// The VFS's registered name.
const NAME: &CStr = c"hookgate-wal";

/// Above this many buffered bytes the buffer is written out early.
const MAX_BUFFER: usize = 8 * 1024 * 1024;

/// The most bytes handed to the wrapped `xWrite` at once: the unix VFS writes at most
/// 128 KiB - 1 per call (it masks the length) and reports a shorter write as a full disk.
const MAX_WRITE: usize = 31 * 4096;

/// One open WAL file: our header, then the wrapped VFS's own file object in the same
/// allocation (SQLite allocates `szOsFile` bytes for each file).
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    /// File offset of `buf[0]`.
    start: i64,
    /// Writes not yet handed to the wrapped file, contiguous from `start`.
    buf: ManuallyDrop<Vec<u8>>,
    /// The same file opened once more, read-only, for `fdatasync`; `None` if that failed,
    /// and then every sync goes to the wrapped VFS.
    data: ManuallyDrop<Option<std::fs::File>>,
    /// Whether the wrapped VFS has synced this file once (and its directory, if new).
    synced: bool,
}

/// Where the wrapped file object begins, after ours, aligned for any C struct.
const REAL_OFFSET: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

/// The wrapped VFS, and ours, registered once per process.
struct Registered {
    under: *mut ffi::sqlite3_vfs,
}

// SAFETY: the pointer names SQLite's static default VFS, which lives for the process and
// is itself safe to use from any thread (SQLite is built threadsafe).
unsafe impl Send for Registered {}
// SAFETY: as above; the pointer is only read.
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Result<Registered, String>> = OnceLock::new();

/// Writes SQLite asked for, writes handed on, and syncs done with `fdatasync`, counted
/// for the tests' sake.
#[cfg(test)]
static COUNTS: [std::sync::atomic::AtomicU64; 3] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 3];

/// Opens (creating it if need be) the database at `path` through this VFS, in WAL mode
/// with `synchronous=FULL`, which the caller must not lower (see the crate's doc). Other
/// connections to the same database use SQLite's default VFS as usual.
///
/// A database this call creates gets pages of `new_page_size` bytes (a power of two from
/// 512 to 65536; SQLite keeps its default for any other value). An existing database keeps
/// the page size it was made with: in WAL mode SQLite cannot change it.
pub fn open(path: &Path, busy_timeout: Duration, new_page_size: u32) -> Result<Connection, String> {
    register()?;
    let c = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), NAME)
        .map_err(|e| e.to_string())?;
    c.busy_timeout(busy_timeout).map_err(|e| e.to_string())?;
    // Before the first write, which switching to WAL is for a new file; a no-op otherwise.
    c.pragma_update(None, "page_size", new_page_size)
        .map_err(|e| e.to_string())?;
    let mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("the database cannot use WAL mode (got {mode})"));
    }
    c.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    Ok(c)
}

/// Syncs the main database file of `conn` (of any connection, whatever its VFS) with
/// SQLite's own `xSync`, on SQLite's own descriptor, as a checkpoint does at its end.
///
/// A checkpoint that does not reach the WAL's end leaves the pages it copied unsynced;
/// this puts them on the disk early. A descriptor of the caller's own would not do: closing
/// any descriptor of a file drops every POSIX lock the process holds on it, SQLite's own
/// included.
pub fn sync_database_file(conn: &Connection) -> Result<(), String> {
    let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
    // SAFETY: `conn.handle()` is a live connection for as long as `conn` is borrowed, and
    // only this thread can use it (a `Connection` is not `Sync`); FILE_POINTER writes the
    // main database's `sqlite3_file` pointer into `file`.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(format!("cannot reach the database file (SQLite code {rc})"));
    }
    // SAFETY: a non-null pointer from FILE_POINTER is the connection's main database file;
    // it stays open while the connection does, and its methods are a static table.
    unsafe {
        let Some(methods) = file.as_ref().and_then(|f| f.pMethods.as_ref()) else {
            return Err("the database file is not open".into());
        };
        let Some(sync) = methods.xSync else {
            return Err("the database file cannot be synced".into());
        };
        match sync(file, ffi::SQLITE_SYNC_NORMAL) {
            ffi::SQLITE_OK => Ok(()),
            rc => Err(format!(
                "syncing the database file failed (SQLite code {rc})"
            )),
        }
    }
}

/// Registers the VFS (once; later calls return the first outcome). Connections opt in by
/// name; the default VFS stays the platform's.
fn register() -> Result<(), String> {
    match REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find with NULL returns the default VFS or NULL; the struct we
        // register is leaked, so it outlives every connection as SQLite requires.
        unsafe {
            let under = ffi::sqlite3_vfs_find(ptr::null());
            if under.is_null() {
                return Err("SQLite has no default VFS".into());
            }
            let mut ours: ffi::sqlite3_vfs = *under;
            ours.szOsFile = (REAL_OFFSET + (*under).szOsFile as usize) as c_int;
            ours.pNext = ptr::null_mut();
            ours.zName = NAME.as_ptr();
            ours.xOpen = Some(x_open);
            let ours = Box::into_raw(Box::new(ours));
            let rc = ffi::sqlite3_vfs_register(ours, 0);
            if rc != ffi::SQLITE_OK {
                drop(Box::from_raw(ours));
                return Err(format!("registering the WAL VFS failed (SQLite code {rc})"));
            }
            Ok(Registered { under })
        }
    }) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.clone()),
    }
}

fn under() -> *mut ffi::sqlite3_vfs {
    match REGISTERED.get() {
        Some(Ok(r)) => r.under,
        _ => ptr::null_mut(),
    }
}

/// The wrapped file object of one of our WAL files.
///
/// # Safety
/// `p` must be a file opened by [`x_open`] with the WAL flag.
unsafe fn real(p: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: `x_open` placed the wrapped file at this offset of the same allocation.
    unsafe { p.cast::<u8>().add(REAL_OFFSET).cast() }
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let under = under();
    // SAFETY: `under` is the registered default VFS; `file` has room for `szOsFile` bytes,
    // which is at least the wrapped VFS's size (non-WAL files) or our header plus it.
    unsafe {
        let Some(under_open) = under.as_ref().and_then(|u| u.xOpen) else {
            return ffi::SQLITE_ERROR;
        };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            // Not a WAL: the wrapped VFS's own file object, at the start of the allocation,
            // with its own methods; this layer is not on its path at all.
            return under_open(under, name, file, flags, out_flags);
        }
        let inner = real(file);
        let rc = under_open(under, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            if let Some(close) = (*inner).pMethods.as_ref().and_then(|m| m.xClose) {
                close(inner);
            }
            (*file).pMethods = ptr::null();
            return rc;
        }
        ptr::write(
            file.cast::<WalFile>(),
            WalFile {
                base: ffi::sqlite3_file { pMethods: &METHODS },
                start: 0,
                buf: ManuallyDrop::new(Vec::new()),
                data: ManuallyDrop::new(open_for_sync(name)),
                synced: false,
            },
        );
        ffi::SQLITE_OK
    }
}

/// Opens the file SQLite named once more, read-only, to `fdatasync` it: a sync applies to
/// the file, whichever descriptor asks. SQLite takes no locks on a WAL file, so closing
/// this descriptor releases none of its own.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
unsafe fn open_for_sync(name: ffi::sqlite3_filename) -> Option<std::fs::File> {
    if name.is_null() {
        return None;
    }
    // SAFETY: SQLite passes a NUL-terminated file name that outlives this call.
    let name = unsafe { CStr::from_ptr(name) };
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(name.to_bytes()));
        std::fs::File::open(path).ok()
    }
    #[cfg(not(unix))]
    {
        let _ = name;
        None
    }
}

/// The wrapped file's methods.
///
/// # Safety
/// `inner` must be an open file of the wrapped VFS.
unsafe fn methods(inner: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: an open file's methods are a static table of the wrapped VFS.
    unsafe { &*(*inner).pMethods }
}

/// Hands the buffered bytes to the wrapped file; on failure they are dropped, as the
/// transaction that wrote them fails with this code.
///
/// # Safety
/// `p` must be one of our open WAL files.
unsafe fn flush(p: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `p` is a WalFile (see `x_open`); the wrapped file is open.
    unsafe {
        let f = &mut *p.cast::<WalFile>();
        if f.buf.is_empty() {
            return ffi::SQLITE_OK;
        }
        let inner = real(p);
        let Some(write) = methods(inner).xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut rc = ffi::SQLITE_OK;
        let mut done = 0usize;
        while done < f.buf.len() {
            let n = (f.buf.len() - done).min(MAX_WRITE);
            #[cfg(test)]
            COUNTS[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rc = write(
                inner,
                f.buf.as_ptr().add(done).cast(),
                n as c_int,
                f.start + done as i64,
            );
            if rc != ffi::SQLITE_OK {
                break;
            }
            done += n;
        }
        f.buf.clear();
        rc
    }
}

unsafe extern "C" fn write(
    p: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    #[cfg(test)]
    COUNTS[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: SQLite passes our open WAL file and `amount` readable bytes at `data`.
    unsafe {
        let f = &mut *p.cast::<WalFile>();
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), amount.max(0) as usize);
        let end = f.start + f.buf.len() as i64;
        let fits = if f.buf.is_empty() {
            f.start = offset;
            true
        } else {
            // Contiguous with, or inside, what is buffered (a frame rewritten in place).
            offset >= f.start && offset <= end
        };
        if !fits || f.buf.len() + bytes.len() > MAX_BUFFER {
            let rc = flush(p);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            let f = &mut *p.cast::<WalFile>();
            f.start = offset;
        }
        let f = &mut *p.cast::<WalFile>();
        let at = (offset - f.start) as usize;
        let new_len = f.buf.len().max(at + bytes.len());
        f.buf.resize(new_len, 0);
        f.buf[at..at + bytes.len()].copy_from_slice(bytes);
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn close(p: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: our open WAL file; it is not used again after this call.
    unsafe {
        let rc = flush(p);
        let inner = real(p);
        let rc2 = methods(inner).xClose.map_or(ffi::SQLITE_OK, |c| c(inner));
        let f = &mut *p.cast::<WalFile>();
        ManuallyDrop::drop(&mut f.buf);
        ManuallyDrop::drop(&mut f.data);
        f.base.pMethods = ptr::null();
        if rc != ffi::SQLITE_OK { rc } else { rc2 }
    }
}

/// Defines a method that flushes, then forwards to the wrapped file.
macro_rules! flush_then {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(p: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite passes our open WAL file and the method's own arguments.
            unsafe {
                let rc = flush(p);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let inner = real(p);
                match methods(inner).$field {
                    Some(m) => m(inner $(, $arg)*),
                    None => ffi::SQLITE_IOERR,
                }
            }
        }
    };
}

flush_then!(read, xRead, (buf: *mut c_void, amount: c_int, offset: i64));
flush_then!(truncate, xTruncate, (size: i64));
flush_then!(wrapped_sync, xSync, (flags: c_int));

unsafe extern "C" fn sync(p: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: SQLite passes our open WAL file; each borrow of it ends before the next.
    unsafe {
        let ready = {
            let f = &*p.cast::<WalFile>();
            f.synced && f.data.is_some()
        };
        if !ready {
            let rc = wrapped_sync(p, flags);
            (*p.cast::<WalFile>()).synced |= rc == ffi::SQLITE_OK;
            return rc;
        }
        let rc = flush(p);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        #[cfg(test)]
        COUNTS[2].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let f = &*p.cast::<WalFile>();
        match f.data.as_ref().map(std::fs::File::sync_data) {
            Some(Ok(())) => ffi::SQLITE_OK,
            _ => ffi::SQLITE_IOERR_FSYNC,
        }
    }
}

flush_then!(file_size, xFileSize, (size: *mut i64));
flush_then!(file_control, xFileControl, (op: c_int, arg: *mut c_void));

/// Defines a method that forwards to the wrapped file unchanged.
macro_rules! forward {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(p: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite passes our open WAL file and the method's own arguments.
            unsafe {
                let inner = real(p);
                match methods(inner).$field {
                    Some(m) => m(inner $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

forward!(lock, xLock, (level: c_int), ffi::SQLITE_OK);
forward!(unlock, xUnlock, (level: c_int), ffi::SQLITE_OK);
forward!(check_reserved, xCheckReservedLock, (out: *mut c_int), ffi::SQLITE_OK);
forward!(sector_size, xSectorSize, (), 4096);
forward!(device_characteristics, xDeviceCharacteristics, (), 0);

/// Version 1: a WAL file is never memory-mapped and has no shared memory of its own.
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    fn writer(path: &std::path::Path) -> Connection {
        let c = open(path, Duration::from_secs(5), 4096).unwrap_or_else(|e| panic!("{e}"));
        let sync: i64 = c
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sync, 2, "FULL");
        c.pragma_update(None, "wal_autocheckpoint", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        c
    }

    /// A new database in a temporary directory, opened through this VFS, with table `t`.
    fn fresh() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("t.db");
        let c = writer(&path);
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)", [])
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, path, c)
    }

    /// Rows written through the VFS, read back by a connection on the default VFS.
    fn read_back(path: &std::path::Path) -> Vec<(i64, Vec<u8>)> {
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("{e}"));
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok, "ok");
        let mut st = c
            .prepare("SELECT id, data FROM t ORDER BY id")
            .unwrap_or_else(|e| panic!("{e}"));
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap_or_else(|e| panic!("{e}"))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn row(i: i64, len: usize) -> Vec<u8> {
        (0..len).map(|k| (i as usize * 31 + k) as u8).collect()
    }

    #[test]
    fn a_database_file_is_synced_through_sqlites_own_file_and_a_memory_one_is_refused() {
        let (_dir, path, c) = fresh();
        c.execute("INSERT INTO t (id, data) VALUES (1, x'00')", [])
            .expect("insert");
        assert_eq!(sync_database_file(&c), Ok(()));
        let other = Connection::open(&path).expect("open");
        assert_eq!(sync_database_file(&other), Ok(()));
        let memory = Connection::open_in_memory().expect("memory");
        assert!(sync_database_file(&memory).is_err());
    }

    #[test]
    fn commits_of_every_size_are_read_back_by_other_connections() {
        let (_dir, path, mut c) = fresh();
        let mut expected = Vec::new();
        let before = (
            COUNTS[0].load(std::sync::atomic::Ordering::Relaxed),
            COUNTS[1].load(std::sync::atomic::Ordering::Relaxed),
        );
        // One small row; 600 KiB in one commit (more than the 128 KiB a single write of
        // the unix VFS takes); 12 MiB in one commit (more than the buffer holds).
        for (first, count, len) in [(1, 1, 100), (2, 150, 4096), (200, 3, 4 << 20)] {
            let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
            for i in first..first + count {
                let data = row(i, len);
                tx.execute("INSERT INTO t VALUES (?1, ?2)", params![i, data])
                    .unwrap_or_else(|e| panic!("{e}"));
                expected.push((i, data));
            }
            tx.commit().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(read_back(&path), expected);
        }
        // The WAL went through this layer, and its writes were coalesced (other tests may
        // add to the counts meanwhile, never take away).
        let asked = COUNTS[0].load(std::sync::atomic::Ordering::Relaxed) - before.0;
        let handed = COUNTS[1].load(std::sync::atomic::Ordering::Relaxed) - before.1;
        assert!(asked > 2 * 150, "{asked} WAL writes asked for");
        assert!(handed > 0);
    }

    #[test]
    fn after_its_first_sync_a_wal_is_synced_with_fdatasync_and_every_commit_reads_back() {
        let (_dir, path, c) = fresh();
        let mut expected = Vec::new();
        let before = COUNTS[2].load(std::sync::atomic::Ordering::Relaxed);
        for i in 1..=20 {
            let data = row(i, 3000);
            c.execute("INSERT INTO t VALUES (?1, ?2)", params![i, data])
                .unwrap_or_else(|e| panic!("{e}"));
            expected.push((i, data));
        }
        assert_eq!(read_back(&path), expected);
        // Twenty commits after the table's: each synced once, all but the first of the
        // file through its own descriptor (other tests may add to the count, never take).
        let data_syncs = COUNTS[2].load(std::sync::atomic::Ordering::Relaxed) - before;
        assert!(data_syncs >= 20, "{data_syncs} fdatasync calls");
    }

    #[test]
    fn a_transaction_larger_than_the_page_cache_spills_and_still_commits_whole() {
        let (_dir, path, mut c) = fresh();
        // A tiny cache makes SQLite write frames before the commit and rewrite some of
        // them in place, and read them back: the paths the buffer must get right.
        c.pragma_update(None, "cache_size", 10)
            .unwrap_or_else(|e| panic!("{e}"));
        let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
        let mut expected = Vec::new();
        for i in 1..=2000 {
            let data = row(i, 700);
            tx.execute("INSERT INTO t VALUES (?1, ?2)", params![i, data])
                .unwrap_or_else(|e| panic!("{e}"));
            expected.push((i, data));
        }
        for i in (1..=2000).step_by(7) {
            let data = row(i + 5000, 700);
            tx.execute("UPDATE t SET data = ?2 WHERE id = ?1", params![i, data])
                .unwrap_or_else(|e| panic!("{e}"));
            expected[(i - 1) as usize].1 = data;
        }
        tx.commit().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_back(&path), expected);
    }

    #[test]
    fn a_rolled_back_transaction_leaves_nothing_and_the_wal_restarts_cleanly() {
        let (_dir, path, mut c) = fresh();
        let mut expected = Vec::new();
        for round in 0..5i64 {
            let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
            tx.execute(
                "INSERT INTO t VALUES (?1, ?2)",
                params![-(round + 1), row(9, 99)],
            )
            .unwrap_or_else(|e| panic!("{e}"));
            tx.rollback().unwrap_or_else(|e| panic!("{e}"));
            let tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
            for i in 0..50 {
                let id = round * 50 + i + 1;
                let data = row(id, 3000);
                tx.execute("INSERT INTO t VALUES (?1, ?2)", params![id, data])
                    .unwrap_or_else(|e| panic!("{e}"));
                expected.push((id, data));
            }
            tx.commit().unwrap_or_else(|e| panic!("{e}"));
            // A full checkpoint, so the next write starts the WAL over from offset 0.
            let (_, backfilled): (i64, i64) = c
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(2)?))
                })
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(backfilled >= 0);
            assert_eq!(read_back(&path), expected);
        }
    }

    #[test]
    fn a_new_database_gets_the_page_size_asked_for_and_an_existing_one_keeps_its_own() {
        let page_size = |c: &Connection| -> i64 {
            c.query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        for size in [512u32, 8192, 65536] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("t.db");
            let c = open(&path, Duration::from_secs(5), size).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(page_size(&c), i64::from(size));
            c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)", [])
                .unwrap_or_else(|e| panic!("{e}"));
            let expected: Vec<_> = (1..=40).map(|i| (i, row(i, 3000))).collect();
            for (id, data) in &expected {
                c.execute("INSERT INTO t VALUES (?1, ?2)", params![id, data])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            drop(c);
            let again = open(&path, Duration::from_secs(5), 4096).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(page_size(&again), i64::from(size), "an existing database");
            let other = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(page_size(&other), i64::from(size));
            assert_eq!(read_back(&path), expected);
        }
    }
}
