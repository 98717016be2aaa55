package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenDirs are the packages whose committed generated files are the
// golden output.
var goldenDirs = []string{
	"../../internal/gentest/fixture",
	"../../internal/gentest/fixture/dep",
}

// generateArgs returns the arguments of the mpgen //go:generate line of
// the package in dir.
func generateArgs(t *testing.T, dir string) []string {
	t.Helper()
	const cmd = "//go:generate go run github.com/mpbridge/mpbridge/cmd/mpgen"
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(src)) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd); ok && (rest == "" || rest[0] == ' ') {
				return strings.Fields(rest)
			}
		}
	}
	t.Fatalf("%s has no %q line", dir, cmd)
	return nil
}

// TestGolden runs mpgen as each fixture's //go:generate line does and
// compares its output with the committed file, so that go generate
// reproduces it byte for byte. With -update it rewrites the files.
func TestGolden(t *testing.T) {
	for _, dir := range goldenDirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			got := map[string][]byte{}
			err := run(generateArgs(t, dir), dir, os.Stderr, func(path string, data []byte) error {
				got[path] = data
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("wrote %d files", len(got))
			}
			for path, data := range got {
				if !bytes.HasPrefix(data, []byte(header+"\n\n")) {
					t.Errorf("%s does not start with %q", path, header)
				}
				if *update {
					if err := os.WriteFile(path, data, 0o666); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(data, want) {
					t.Errorf("%s is stale: run go generate ./internal/gentest/... (or go test ./cmd/mpgen -update)\n%s", path, firstDiff(data, want))
				}
			}
		})
	}
}

// firstDiff describes the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g := strings.Split(string(got), "\n")
	w := strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\ngenerated: " + gl + "\ncommitted: " + wl
		}
	}
	return ""
}

// TestCommandLine covers the flags on a small package.
func TestCommandLine(t *testing.T) {
	dir := filepath.Join("testdata", "good")
	gen := func(args ...string) (map[string]string, error) {
		out := map[string]string{}
		var stderr bytes.Buffer
		err := run(args, dir, &stderr, func(path string, data []byte) error {
			out[filepath.ToSlash(path)] = string(data)
			return nil
		})
		return out, err
	}

	out, err := gen()
	if err != nil {
		t.Fatal(err)
	}
	src, ok := out[abs(t, "testdata/good/good_mpgen.go")]
	if !ok || !strings.Contains(src, "type goodProxy struct") || strings.Contains(src, "otherProxy") {
		t.Errorf("default run wrote %v", keys(out))
	}
	typeCheck(t, dir, abs(t, "testdata/good/good_mpgen.go"), src)

	out, err = gen("-type", "Other,Good", "-prefix", "gen", "-o", "x.go")
	if err != nil {
		t.Fatal(err)
	}
	src, ok = out["testdata/good/x.go"]
	if !ok || !strings.Contains(src, "type genOtherProxy struct") || !strings.Contains(src, "type genGoodProxy struct") {
		t.Errorf("-type -prefix -o wrote %v:\n%s", keys(out), src)
	}
	typeCheck(t, dir, abs(t, "testdata/good/x.go"), src)

	out, err = gen("-type", "Hook")
	if err != nil {
		t.Fatal(err)
	}
	for path, src := range out {
		if strings.Contains(src, `"time"`) {
			t.Errorf("a file registering only Hook imports time:\n%s", src)
		}
		typeCheck(t, dir, path, src)
	}

	if _, err := gen("-bogus"); err != errUsage {
		t.Errorf("unknown flag: %v", err)
	}
	if _, err := gen("-o", "x.go", ".", "../errs/other"); err == nil || !strings.Contains(err.Error(), "-o needs exactly one package") {
		t.Errorf("-o with two packages: %v", err)
	}
}

// TestStaleOutputIgnored checks that a broken earlier output does not stop
// the generator.
func TestStaleOutputIgnored(t *testing.T) {
	stale, err := filepath.Abs(filepath.Join("testdata", "good", "good_mpgen.go"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := generate(config{
		dir:      filepath.Join("testdata", "good"),
		patterns: []string{"."},
		overlay:  map[string][]byte{stale: []byte(header + "\n\npackage good\n\nvar x = undefined\n\ntype goodProxy int\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || !strings.Contains(string(files[0].data), "type goodProxy struct") {
		t.Errorf("generated %v", files)
	}
}

// typeCheck checks that the package in dir compiles with src as the
// file at path.
func typeCheck(t *testing.T, dir, path, src string) {
	t.Helper()
	pkgs, err := packages.Load(&packages.Config{
		Mode:    packages.NeedTypes | packages.NeedSyntax,
		Dir:     dir,
		Overlay: map[string][]byte{filepath.FromSlash(path): []byte(src)},
	}, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range pkgs[0].Errors {
		t.Errorf("generated code does not compile: %v\n%s", e, src)
	}
}

func abs(t *testing.T, path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(p)
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestNoClash checks that generated code compiles in a package whose names
// and parameter names collide with what the generated code uses.
func TestNoClash(t *testing.T) {
	dir := filepath.Join("testdata", "clash")
	files, err := generate(config{dir: dir, patterns: []string{"."}})
	if err != nil {
		t.Fatal(err)
	}
	typeCheck(t, dir, files[0].path, string(files[0].data))
}
