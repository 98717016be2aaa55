package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnsure(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	base := t.TempDir()
	d := filepath.Join(base, "a", "b")
	if tight, err := Ensure(d); err != nil || tight {
		t.Fatalf("Ensure new: %v %v", tight, err)
	}
	if m := mode(t, d); m != 0o700 {
		t.Errorf("new directory %04o under umask 0", m)
	}
	os.Chmod(d, 0o750)
	if tight, err := Ensure(d); err != nil || !tight || mode(t, d) != 0o700 {
		t.Errorf("readable by the group: tightened %v, %v, now %04o", tight, err, mode(t, d))
	}
	os.Chmod(d, 0o770)
	if _, err := Ensure(d); err == nil || !strings.Contains(err.Error(), "lets others write") || mode(t, d) != 0o770 {
		t.Errorf("writable by the group: %v, now %04o", err, mode(t, d))
	}
	f := filepath.Join(base, "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Ensure(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: %v", err)
	}
}

func TestAcquire(t *testing.T) {
	d := filepath.Join(t.TempDir(), "d")
	l, _, err := Acquire(d, "first[1]")
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file, so a second open in this
	// process conflicts like another process would.
	if _, _, err := Acquire(d, "second[2]"); err == nil || err.Error() != "datadir "+d+" is in use by first[1]" {
		t.Fatalf("second Acquire: %v", err)
	}
	if m := mode(t, filepath.Join(d, LockName)); m != 0o600 {
		t.Errorf("lock file %04o", m)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal("second Release:", err)
	}
	l2, _, err := Acquire(d, "second[2]")
	if err != nil {
		t.Fatal("after Release:", err)
	}
	l2.Release()
}

func TestURI(t *testing.T) {
	for _, p := range []string{"/x/d#frag/chain.sqlite", "/x/d?mode=memory/c", "/x/d%41/c", "/x/d?vfs=unix-none&a=b/c"} {
		u, err := URI(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(strings.TrimPrefix(u, "file:"), "#?") || !strings.HasPrefix(u, "file:///x/d") {
			t.Errorf("URI(%q) = %q: the path is not escaped", p, u)
		}
	}
}

func TestOpenSQLiteModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	d := filepath.Join(t.TempDir(), "x#y?mode=memory")
	db, err := OpenSQLite(d, "t.sqlite")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (a INTEGER)`); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(d)
	if len(ents) < 2 {
		t.Fatalf("files in %s: %v", d, ents)
	}
	for _, e := range ents {
		if m := mode(t, filepath.Join(d, e.Name())); m != 0o600 {
			t.Errorf("%s has mode %04o", e.Name(), m)
		}
	}
}
