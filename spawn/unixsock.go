package spawn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxUnixPath is the longest path a unix socket can be bound to on Linux
// (sun_path is 108 bytes with the terminating NUL).
const maxUnixPath = 107

// listenUnix listens on a unix socket at path whose file is mode 0600 from
// the moment it can be reached, and returns what removes it again.
//
// The umask decides the mode bind gives a socket file, and changing the
// umask would change it for every goroutine of the process, so instead the
// socket is bound inside a fresh directory of mode 0700 next to path (on
// the same file system), chmodded to 0600 there, where no other uid can
// reach it, and only then given its name: with link, which fails rather
// than replace a file that appeared meanwhile, or, to replace a stale
// socket, with rename, which swaps the name atomically. The listening
// socket belongs to the inode, not the name, so it keeps working under its
// new name.
//
// path is refused when it exists and is not a socket (a regular file, a
// symbolic link, a directory: nothing is deleted), or is a socket some
// process accepts connections on.
func listenUnix(path string) (*net.UnixListener, func(), error) {
	stale, err := checkSocketPath(path)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".s")
	if err != nil {
		return nil, nil, fmt.Errorf("create the socket %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	if len(tmp) > maxUnixPath {
		return nil, nil, fmt.Errorf("socket path %s is too long: a unix socket path has at most %d bytes, and %d more are needed while it is created", path, maxUnixPath, len(tmp)-len(path))
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	// The name it was bound to is gone by the time it is closed; its real
	// name is removed by the func returned below.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, func(), error) {
		ln.Close()
		return nil, nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if stale {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		err = fmt.Errorf("%s appeared while the socket was being created; not replacing it", path)
	}
	if err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	remove := func() {
		// Only if the name still is this socket: a process that replaced
		// it keeps its own.
		if cur, err := os.Lstat(path); err == nil && os.SameFile(fi, cur) {
			_ = os.Remove(path)
		}
	}
	return ln, remove, nil
}

// checkSocketPath decides whether a socket may be created at path: it may
// if nothing is there (stale false) or a stale socket is (stale true).
func checkSocketPath(path string) (stale bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return false, fmt.Errorf("%s exists and is not a socket (%s); not replacing it", path, describeMode(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	switch {
	case err == nil:
		c.Close()
		return false, fmt.Errorf("%s is in use: another process is serving there", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return true, nil // nobody accepts on it: stale
	case errors.Is(err, os.ErrNotExist):
		return false, nil // removed meanwhile
	default:
		return false, fmt.Errorf("%s: cannot tell whether another process serves it, so not replacing it: %w", path, err)
	}
}

func describeMode(m os.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case os.ModeDir:
		return "a directory"
	case os.ModeSymlink:
		return "a symbolic link"
	case os.ModeNamedPipe:
		return "a named pipe"
	case os.ModeDevice, os.ModeDevice | os.ModeCharDevice:
		return "a device"
	}
	return m.String()
}
