package node

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// OpenSQLite opens the SQLite database file name in dir, creating both if
// needed, in WAL mode with synchronous=FULL, so that a committed
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
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		u := url.URL{Scheme: "file", Opaque: filepath.Join(dir, name)}
		q := url.Values{}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "busy_timeout(10000)")
		u.RawQuery = q.Encode()
		dsn = u.String()
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
