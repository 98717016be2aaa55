// Package wiretrace records every message a process's connections send and
// receive, as JSON lines in one file that a whole tree of processes can
// share. Setting MPBRIDGE_TRACE=FILE in the environment of any binary
// turns it on: package spawn hooks Hook into every connection it makes
// (spawned children, the child's own stdio, sockets dialled and
// accepted), and children inherit the variable, so the node and the
// wallets a GUI spawns trace to the same file.
//
// A line is
//
//	{"time":"2026-12-04T05:23:25.123456789Z","self":"mpnode[4241]","peer":"mpwallet[4242]","conn":1,"dir":"out","msg":{"jsonrpc":"2.0",...}}
//
// where dir is "in" or "out" as seen by self, conn numbers self's
// connections from 1, and msg is the message, compacted (a message that is
// not JSON, which the connection answers with a parse error, is kept as
// the string "raw" instead). "mpbridge trace FILE" prints such a file as a
// conversation.
//
// Writers in several processes never interleave: the file is opened with
// O_APPEND, each line is one write, and the write is made under an
// exclusive flock(2) of the file, so lines of any size stay whole (a
// write of more than PIPE_BUF bytes is not atomic by itself). With the
// variable unset, Hook returns the connection's own Trace unchanged, so
// tracing off costs nothing.
package wiretrace

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/sys/unix"
)

// Env is the environment variable that names the trace file.
const Env = "MPBRIDGE_TRACE"

// File is a trace file open for appending.
type File struct {
	mu    sync.Mutex // one writer at a time in this process; flock for the others
	f     *os.File
	conns atomic.Int64
	self  string
}

// Open opens (creating it, mode 0600) the trace file at path for
// appending. self names this process in the lines, e.g. "mpnode[4241]".
func Open(path, self string) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &File{f: f, self: self}, nil
}

// Close closes the file; hooks still in use then drop their lines.
func (t *File) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.f.Close()
	t.f = nil
	return err
}

// Conn returns a bridge.Options.Trace function that records the messages
// of one new connection to peer.
func (t *File) Conn(peer string) func(dir string, msg []byte) {
	n := t.conns.Add(1)
	// The fixed part of every line of this connection.
	var head []byte
	head = append(head, `","self":`...)
	head, _ = jsontext.AppendQuote(head, t.self)
	head = append(head, `,"peer":`...)
	head, _ = jsontext.AppendQuote(head, peer)
	head = append(head, `,"conn":`...)
	head = strconv.AppendInt(head, n, 10)
	head = append(head, `,"dir":"`...)
	return func(dir string, msg []byte) { t.write(head, dir, msg) }
}

// write builds one line and appends it to the file in a single write.
func (t *File) write(head []byte, dir string, msg []byte) {
	line := make([]byte, 0, len(msg)+len(head)+80)
	line = append(line, `{"time":"`...)
	line = time.Now().UTC().AppendFormat(line, time.RFC3339Nano)
	line = append(line, head...)
	line = append(line, dir...)
	line = append(line, `",`...)
	if v := jsontext.Value(bytes.Clone(msg)); v.IsValid() && v.Compact() == nil {
		line = append(line, `"msg":`...)
		line = append(line, v...)
	} else {
		line = append(line, `"raw":`...)
		line, _ = jsontext.AppendQuote(line, strings.ToValidUTF8(string(msg), "\uFFFD"))
	}
	line = append(line, "}\n"...)

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return
	}
	fd := int(t.f.Fd())
	for unix.Flock(fd, unix.LOCK_EX) == unix.EINTR {
	}
	_, _ = t.f.Write(line)
	_ = unix.Flock(fd, unix.LOCK_UN)
}

var (
	envOnce sync.Once
	envFile *File
)

// FromEnv returns the trace file named by MPBRIDGE_TRACE, opened once per
// process, or nil when the variable is unset or empty. A file that cannot
// be opened is reported once on stderr and tracing stays off.
func FromEnv() *File {
	envOnce.Do(func() {
		path := os.Getenv(Env)
		if path == "" {
			return
		}
		f, err := Open(path, Self())
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s: %v (tracing off)\n", Self(), Env, err)
			return
		}
		envFile = f
	})
	return envFile
}

// Hook returns the Trace function of a new connection to peer: next (the
// connection's own Trace, possibly nil) when MPBRIDGE_TRACE is unset, or
// one that writes to the trace file and then calls next.
func Hook(next func(dir string, msg []byte), peer string) func(dir string, msg []byte) {
	f := FromEnv()
	if f == nil {
		return next
	}
	tr := f.Conn(peer)
	if next == nil {
		return tr
	}
	return func(dir string, msg []byte) {
		tr(dir, msg)
		next(dir, msg)
	}
}

// Self names this process as its peers do: "mpnode[4241]".
func Self() string {
	return fmt.Sprintf("%s[%d]", filepath.Base(os.Args[0]), os.Getpid())
}

// Parent names the parent process the same way, from /proc where there
// is one: "mpgui[4240]", else "parent[4240]".
func Parent() string {
	ppid := os.Getppid()
	name := "parent"
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", ppid)); err == nil {
		name = filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	} else if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid)); err == nil {
		name = strings.TrimSpace(string(comm))
	}
	return fmt.Sprintf("%s[%d]", name, ppid)
}
