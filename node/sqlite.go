package node

import (
	"database/sql"

	"github.com/mpbridge/mpbridge/internal/datadir"
)

// OpenSQLite opens the SQLite database file name in dir, creating both if
// needed: dir mode 0700, the database files 0600. It is WAL mode with
// synchronous=FULL, so that a committed transaction survives a crash of
// the process or of the machine. With dir "" the database lives in memory
// and is gone with the process. dir is a path, never URI text. See
// internal/datadir.
func OpenSQLite(dir, name string) (*sql.DB, error) { return datadir.OpenSQLite(dir, name) }
