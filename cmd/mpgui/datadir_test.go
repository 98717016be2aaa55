package main

// Tests of the data directory (issue 10, items 2, 4 and 5): its mode and
// the databases', names that look like URI syntax, and the lock that keeps
// a second process off a directory in use. All run the real commands.

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// withUmask runs f with the process umask set to mask (children inherit
// it), then restores the old one.
func withUmask(mask int, f func()) {
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	f()
}

// modes returns the permission bits of every file and directory under
// root, by path relative to root, the lock and cookie files excepted.
func modes(t *testing.T, root string) map[string]os.FileMode {
	t.Helper()
	out := map[string]os.FileMode{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = fi.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDatadirModes: under the common umask 022 the data directories are
// 0700 and every SQLite file (database, -wal, -shm) 0600; an existing
// directory readable by others is tightened, one writable by others is
// refused, and a database file left 0644 by an older version is set to
// 0600. (Before: wallet.sqlite was -rw-r--r--, the directory 0755.)
func TestDatadirModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var out, errOut string
	var code int
	withUmask(0o022, func() {
		// A running node keeps its -wal and -shm files: look while it runs.
		sock := "unix:" + filepath.Join(filepath.Dir(dir), "n.sock")
		n := start(t, "mpnode", "-listen="+sock, "-datadir="+dir)
		n.waitLine(`listening on`)
		out, errOut, code = gui(t, "createwallet default\ngenerate 2\n", "-connect="+sock, "-datadir="+dir)
		if code != 0 {
			t.Fatalf("mpgui generate: %d\n%s\n%s", code, out, errOut)
		}
		m := modes(t, dir)
		for _, f := range []string{"chain.sqlite", "chain.sqlite-wal", "chain.sqlite-shm", "wallets/wallet.sqlite", "wallets/wallet.sqlite-wal", "wallets/wallet.sqlite-shm"} {
			if _, ok := m[f]; !ok {
				t.Errorf("no %s in the data directory: %v", f, m)
			}
		}
		for f, mode := range m {
			want := os.FileMode(0o600)
			if f == "." || f == "wallets" {
				want = 0o700
			}
			if mode != want {
				t.Errorf("%s has mode %04o, want %04o", f, mode, want)
			}
		}
		if err := n.stop(syscall.SIGTERM); err != nil {
			t.Fatalf("mpnode exit: %v", err)
		}
	})

	// An existing directory others may read is tightened, and an old
	// database file readable by others too.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "wallets", "wallet.sqlite"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = gui(t, "", "-datadir="+dir, "getblockcount")
	if code != 0 || strings.TrimSpace(out) != "2" {
		t.Fatalf("mpgui getblockcount on the old directory: %d %q %q", code, out, errOut)
	}
	for f, mode := range modes(t, dir) {
		if f == "." || f == "wallets" {
			if mode != 0o700 {
				t.Errorf("%s was not tightened: %04o", f, mode)
			}
		} else if mode != 0o600 {
			t.Errorf("%s was not tightened: %04o", f, mode)
		}
	}

	// One others may write to is refused, loudly, and left alone.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = gui(t, "", "-datadir="+dir, "getblockcount")
	if code == 0 || !strings.Contains(errOut, "lets others write to it") || !strings.Contains(errOut, dir) {
		t.Fatalf("mpgui on a world-writable data directory: %d %q %q", code, out, errOut)
	}
	if m := modes(t, dir)["."]; m != 0o777 {
		t.Errorf("the refused directory's mode changed to %04o", m)
	}
}

// TestDatadirURICharacters runs mpgui on data directories whose names
// look like SQLite URI syntax: every file lands inside the directory,
// nothing beside it, and the chain persists (no ?mode=memory took
// effect). (Before: DIR#frag put the chain and the wallets, seeds
// included, into one file DIR outside the directory.)
func TestDatadirURICharacters(t *testing.T) {
	for _, name := range []string{"d#frag", "d?mode=memory", "d?vfs=unix-none&x=1", "d%23x", "d%3Fmode=memory"} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, name)
			for i, want := range []string{"1", "2"} {
				// The first run creates the wallet; the second finds it
				// (the only one) in the directory.
				stdin, args := "createwallet w\ngenerate 1\n", []string{"-datadir=" + dir}
				if i > 0 {
					stdin, args = "", append(args, "generate", "1")
				}
				out, errOut, code := gui(t, stdin, args...)
				if code != 0 {
					t.Fatalf("run %d: %d\n%s\n%s", i, code, out, errOut)
				}
				out, errOut, code = gui(t, "", "-datadir="+dir, "getblockcount")
				if code != 0 || strings.TrimSpace(out) != want {
					t.Fatalf("run %d: getblockcount %d %q %q, want %s", i, code, out, errOut, want)
				}
			}
			ents, err := os.ReadDir(parent)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if !slices.Equal(names, []string{name}) {
				t.Errorf("beside the data directory: %q, want only %q", names, name)
			}
			m := modes(t, dir)
			for _, f := range []string{"chain.sqlite", "wallets/wallet.sqlite"} {
				if _, ok := m[f]; !ok {
					t.Errorf("no %s inside %q: %v", f, dir, m)
				}
			}
		})
	}
}

// TestDatadirLocked: a second process on a data directory in use exits 1
// at once naming the first; two mpgui generate on one directory at once do
// not mix their blocks; the lock goes with the process. (Before: both
// started, and the second failed with "UNIQUE constraint failed:
// blocks.height", or a second mpnode served the same files.)
func TestDatadirLocked(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "data")
	sock := "unix:" + filepath.Join(tmp, "n.sock")
	n := start(t, "mpnode", "-listen="+sock, "-datadir="+dir)
	n.waitLine(`listening on`)
	pid := n.cmd.Process.Pid

	_, errOut, code := runBin(t, "", "mpnode", "-listen=unix:"+filepath.Join(tmp, "n2.sock"), "-datadir="+dir)
	want := "datadir " + dir + " is in use by mpnode[" + strconv.Itoa(pid) + "]"
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("second mpnode: exit %d, stderr %q; want exit 1 and %q", code, errOut, want)
	}
	// The node's spawned wallet holds its wallets directory.
	wpid := walletPid(t, pid)
	_, errOut, code = runBin(t, "", "mpwallet", "-connect="+sock, "-datadir="+filepath.Join(dir, "wallets"))
	want = "datadir " + filepath.Join(dir, "wallets") + " is in use by mpwallet[" + strconv.Itoa(wpid) + "]"
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("second mpwallet: exit %d, stderr %q; want exit 1 and %q", code, errOut, want)
	}
	if err := n.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mpnode exit: %v", err)
	}

	// Two at once: exactly one mines, the other is refused.
	type result struct {
		out, err string
		code     int
	}
	var wg sync.WaitGroup
	res := make([]result, 2)
	for i := range res {
		wg.Go(func() {
			o, e, c := gui(t, "createwallet w\ngenerate 300\n", "-datadir="+dir)
			res[i] = result{o, e, c}
		})
	}
	wg.Wait()
	inUse := regexp.MustCompile(`datadir \S+ is in use by mpnode\[\d+\]`)
	ok := 0
	for _, r := range res {
		switch {
		case r.code == 0 && strings.Contains(r.out, "mined 300 blocks"):
			ok++
		case r.code == 1 && inUse.MatchString(r.err):
		default:
			t.Errorf("mpgui generate: %d\n%s\n%s", r.code, r.out, r.err)
		}
		if strings.Contains(r.err, "UNIQUE") {
			t.Errorf("blocks mixed: %s", r.err)
		}
	}
	// The two may also have run one after the other.
	if ok == 0 {
		t.Fatalf("neither mined: %+v", res)
	}
	out, errOut, code := gui(t, "", "-datadir="+dir, "getblockcount")
	if code != 0 || strings.TrimSpace(out) != strconv.Itoa(300*ok) {
		t.Fatalf("after: %d %q %q, want %d", code, out, errOut, 300*ok)
	}
}
