package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
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
	"../../internal/gentest/plain/plainipc", // generated into another package
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
		// Hook's generated proxy and dispatcher name its parameter type.
		if !strings.Contains(src, `"time"`) || !strings.Contains(src, "RegisterFuncType") {
			t.Errorf("a file generating Hook:\n%s", src)
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

// TestIntoOtherPackage generates the bindings of testdata/into/api into
// testdata/into/apiipc, which declares the names of every package the
// generated file imports, and checks that the result compiles there.
func TestIntoOtherPackage(t *testing.T) {
	dir := filepath.Join("testdata", "into", "apiipc")
	gen := func(dir string, overlay map[string][]byte, args ...string) (map[string]string, error) {
		t.Helper()
		cfg, err := parseArgs(args, dir, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg.overlay = overlay
		files, err := generate(cfg)
		out := map[string]string{}
		for _, f := range files {
			out[filepath.ToSlash(f.path)] = string(f.data)
		}
		return out, err
	}

	out, err := gen(dir, nil, "-out", ".", "../api")
	if err != nil {
		t.Fatal(err)
	}
	path := "testdata/into/apiipc/api_mpgen.go"
	src, ok := out[path]
	if !ok {
		t.Fatalf("wrote %v", keys(out))
	}
	for _, want := range []string{
		"\npackage apiipc\n",
		`context2 "context"`,
		`time2 "time"`,
		`bridge2 "github.com/mpbridge/mpbridge/bridge"`,
		`callbacks2 "github.com/mpbridge/mpbridge/callbacks"`,
		`api2 "github.com/mpbridge/mpbridge/cmd/mpgen/testdata/into/api"`,
		`api3 "github.com/mpbridge/mpbridge/cmd/mpgen/testdata/into/other/api"`,
		"func (p svcProxy) At(ctx context2.Context, time_ time2.Time, api_ api3.Point, context_ string) (*api3.Point, error) {",
		"func (p svcProxy) Open(ctx context2.Context, bridge_ []api2.Level) (api2.Sub, error) {",
		"type svcObject struct{ impl api2.Svc }",
		"reflect.TypeFor[api2.Svc]()",
		"callbacks2.Register(callbacks2.Interface[api2.Svc]{",
		"Proxy:    func(r *bridge2.Remote) api2.Svc { return svcProxy{r} },",
		"func OpenRPCSub() []byte",
		"for the interface api2.Sub, as a JSON array.",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("generated file lacks %q:\n%s", want, src)
		}
	}
	typeCheck(t, dir, abs(t, path), src)

	// -o names the file; -out still decides its package.
	out, err = gen(filepath.Join("testdata", "into", "api"), nil, "-out", "../apiipc", "-o", "preview.go", "-type", "Sub", ".")
	if err != nil {
		t.Fatal(err)
	}
	src = out["testdata/into/api/preview.go"]
	if !strings.Contains(src, "\npackage apiipc\n") || !strings.Contains(src, "type subProxy struct") || strings.Contains(src, "svcProxy") {
		t.Errorf("-out -o -type wrote %v:\n%s", keys(out), src)
	}
	typeCheck(t, dir, abs(t, "testdata/into/apiipc/api_mpgen.go"), src)

	// -out naming the interfaces' own directory is the default.
	own, err := gen(filepath.Join("testdata", "good"), nil, "-out", ".")
	if err != nil {
		t.Fatal(err)
	}
	def, err := gen(filepath.Join("testdata", "good"), nil)
	if err != nil {
		t.Fatal(err)
	}
	absKeys := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[abs(t, k)] = v
		}
		return out
	}
	if !reflect.DeepEqual(absKeys(own), absKeys(def)) {
		t.Errorf("-out . differs from the default:\n%v\n%v", own, def)
	}

	// A directory without Go files takes its own name.
	empty, err := os.MkdirTemp(filepath.Join("testdata", "into"), "empty")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(empty)
	fresh := filepath.Join(empty, "fresh")
	if err := os.Mkdir(fresh, 0o777); err != nil {
		t.Fatal(err)
	}
	out, err = gen(dir, nil, "-out", "../"+filepath.Base(empty)+"/fresh", "../api")
	if err != nil {
		t.Fatal(err)
	}
	if src := out[filepath.ToSlash(fresh)+"/api_mpgen.go"]; !strings.Contains(src, "\npackage fresh\n") {
		t.Errorf("into an empty directory wrote %v", keys(out))
	}

	svcProxy, err := filepath.Abs(filepath.Join(dir, "clash.go"))
	if err != nil {
		t.Fatal(err)
	}
	twin, err := filepath.Abs(filepath.Join("testdata", "into", "twin", "twin.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		overlay map[string][]byte
		args    []string
		want    []string
	}{
		{"declared by the package", map[string][]byte{svcProxy: []byte("package apiipc\n\ntype svcProxy int\n")},
			[]string{"-out", ".", "../api"}, []string{"clash.go:3:6", "svcProxy is declared here", "for Svc", "-prefix"}},
		{"hand-written file", nil,
			[]string{"-out", ".", "-o", "apiipc.go", "../api"}, []string{"apiipc.go", "not generated by mpgen"}},
		{"same package name", nil,
			[]string{"-out", ".", "../api", "../other/api"}, []string{"other/api", "both be generated into", "api_mpgen.go"}},
		{"same names in one package", map[string][]byte{twin: []byte("package twin\n\nimport \"context\"\n\n//mpgen:interface\ntype Svc interface{ Get(ctx context.Context) (int, error) }\n")},
			[]string{"-out", ".", "../api", "../twin"}, []string{"svcProxy", "package apiipc", "api.Svc and twin.Svc", "once for each package"}},
		{"not a directory", nil,
			[]string{"-out", "nowhere", "../api"}, []string{"-out", "nowhere", "not a directory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := gen(dir, c.overlay, c.args...)
			if err == nil {
				t.Fatalf("no error; wrote %v", keys(out))
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
