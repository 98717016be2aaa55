package spawn

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// LookPath finds the executable that Start runs for name.
//
// A name that contains a path separator is used as is (made absolute); it
// must name an executable regular file. Any other name is looked up first in
// the directory of the running executable (symbolic links resolved), so that
// programs installed side by side find each other, and then in the
// directories listed in PATH. Relative PATH entries are skipped, as
// exec.LookPath does.
//
// The error names the program and the places searched. When nothing was
// found it wraps exec.ErrNotFound.
func LookPath(name string) (string, error) {
	var exeDir string
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		exeDir = filepath.Dir(exe)
	}
	return lookPath(name, exeDir, os.Getenv("PATH"))
}

// lookPath is LookPath with the directory of the running executable and the
// value of PATH given explicitly. An empty exeDir is not searched.
func lookPath(name, exeDir, path string) (string, error) {
	if name == "" {
		return "", errors.New("spawn: empty program name")
	}
	if strings.ContainsRune(name, '/') || strings.ContainsRune(name, filepath.Separator) {
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", fmt.Errorf("spawn: program %q: %w", name, err)
		}
		if err := checkExecutable(abs); err != nil {
			return "", fmt.Errorf("spawn: program %q: %w", name, err)
		}
		return abs, nil
	}

	var searched, rejected []string
	try := func(dir string) (string, bool) {
		searched = append(searched, dir)
		candidate := filepath.Join(dir, name)
		err := checkExecutable(candidate)
		if err == nil {
			return candidate, true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			rejected = append(rejected, fmt.Sprintf("%s: %v", candidate, err))
		}
		return "", false
	}
	if exeDir != "" {
		if p, ok := try(exeDir); ok {
			return p, nil
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		if p, ok := try(dir); ok {
			return p, nil
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "spawn: program %q not found beside the executable or in PATH", name)
	if len(searched) == 0 {
		b.WriteString(" (no directories to search)")
	} else {
		fmt.Fprintf(&b, " (searched %s)", strings.Join(searched, ", "))
	}
	if len(rejected) > 0 {
		fmt.Fprintf(&b, "; rejected %s", strings.Join(rejected, "; "))
	}
	return "", &notFoundError{msg: b.String()}
}

// checkExecutable reports whether path is a regular file with an execute
// permission bit set.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return pe.Err // the caller names the file
		}
		return err
	}
	switch {
	case fi.IsDir():
		return errors.New("is a directory")
	case !fi.Mode().IsRegular():
		return errors.New("not a regular file")
	case fi.Mode().Perm()&0o111 == 0:
		return errors.New("not executable")
	}
	return nil
}

// notFoundError is returned by lookPath when no candidate qualified.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

func (e *notFoundError) Unwrap() error { return exec.ErrNotFound }
