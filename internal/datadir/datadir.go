// Package datadir is how the example's processes (mpnode, mpwallet) keep
// their data directory: created mode 0700, locked while a process uses it,
// and holding SQLite databases that only the owner can read.
//
// A data directory is a filesystem path, never URI text: OpenSQLite builds
// the SQLite URI with net/url, so '#', '?' and '%' in the path are ordinary
// characters and cannot add URI options or cut the path short.
//
// Choice for an existing directory: one that another user owns, or that
// its group or others may write to, is refused (someone else could have
// put files or links in it); one that is only readable by group or others
// is tightened to 0700, with a note returned to the caller to log.
package datadir

import (
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// LockName is the lock file in a locked data directory.
const LockName = ".lock"

// Ensure creates dir mode 0700 if it does not exist (its parents too,
// also 0700), whatever the umask. An existing dir must be a directory
// owned by this user that neither group nor others may write to; if group
// or others may read or enter it, its mode is set to 0700 and tightened
// is true.
func Ensure(dir string) (tightened bool, err error) {
	if dir == "" {
		return false, errors.New("datadir: empty path")
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("datadir %s: %w", dir, err)
		}
		// MkdirAll honours the umask, which can only remove bits; set
		// the mode exactly.
		if err := os.Chmod(dir, 0o700); err != nil {
			return false, fmt.Errorf("datadir %s: %w", dir, err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("datadir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("datadir %s: not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return false, fmt.Errorf("datadir %s: owned by uid %d, not by this user (uid %d)", dir, st.Uid, os.Getuid())
	}
	perm := fi.Mode().Perm()
	if perm&0o022 != 0 {
		return false, fmt.Errorf("datadir %s: mode %04o lets others write to it; refusing to use it (chmod 700 %s if it is yours alone)", dir, perm, dir)
	}
	if perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return false, fmt.Errorf("datadir %s: %w", dir, err)
		}
		return true, nil
	}
	return false, nil
}

// Lock is a held lock on a data directory.
type Lock struct {
	f *os.File
}

// Acquire ensures dir (see Ensure) and takes an exclusive lock on
// dir/.lock, writing owner (such as "mpnode[4242]") into it. If another
// process holds the lock it fails at once with an error such as
// "datadir D is in use by mpnode[4242]". The lock is released by Release,
// or by the system when the process exits.
func Acquire(dir, owner string) (*Lock, bool, error) {
	tightened, err := Ensure(dir)
	if err != nil {
		return nil, false, err
	}
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, tightened, fmt.Errorf("datadir %s: %w", dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who, _ := os.ReadFile(path)
			name := strings.TrimSpace(string(who))
			if name == "" {
				name = "another process"
			}
			return nil, tightened, fmt.Errorf("datadir %s is in use by %s", dir, name)
		}
		return nil, tightened, fmt.Errorf("datadir %s: lock %s: %w", dir, path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(owner+"\n"), 0)
	}
	return &Lock{f: f}, tightened, nil
}

// Owner returns the name of the running program and its pid, such as
// "mpnode[4242]", for Acquire.
func Owner() string {
	return filepath.Base(os.Args[0]) + "[" + strconv.Itoa(os.Getpid()) + "]"
}

// Release gives up the lock. It is idempotent.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	_ = f.Truncate(0)
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return f.Close()
}

// URI returns the SQLite URI of the database file path with the given
// query, built with net/url: the path is absolute and escaped, so nothing
// in it is read as URI syntax.
func URI(path string, query url.Values) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: query.Encode()}
	return u.String(), nil
}

// sqliteFiles are the suffixes of the files SQLite keeps beside a
// database.
var sqliteFiles = []string{"", "-wal", "-shm", "-journal"}

// OpenSQLite opens the SQLite database file name in dir, creating both if
// needed (dir as Ensure does, the files mode 0600, and existing ones set to
// 0600), in WAL mode with synchronous=FULL, so that a committed
// transaction survives a crash of the process or of the machine. With dir
// "" the database lives in memory and is gone with the process.
//
// The pool holds one connection: writes are serialised by their callers
// anyway, and an in-memory database exists only in its connection.
func OpenSQLite(dir, name string) (*sql.DB, error) {
	var dsn string
	if dir == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		dsn = fmt.Sprintf("file:mem-%x?mode=memory", b)
	} else {
		if _, err := Ensure(dir); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, name)
		// SQLite creates the -wal, -shm and -journal files with the
		// database file's mode: create it 0600 first.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		f.Close()
		for _, s := range sqliteFiles {
			if err := os.Chmod(path+s, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("open %s: %w", path, err)
			}
		}
		q := url.Values{}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "busy_timeout(10000)")
		if dsn, err = URI(path, q); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if dir != "" {
		var mode string
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			db.Close()
			return nil, fmt.Errorf("open %s: cannot use WAL mode (got %q, %v)", name, mode, err)
		}
	}
	return db, nil
}
