package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// An errorCase is a faulty declaration, overlaid alone on package
// testdata/errs, with the fragments the error must contain: the method
// (or type) at fault and the type or name that is wrong.
type errorCase struct {
	name  string
	types string // -type, if any
	src   string
	want  []string
}

// errorCases are generated into package errs itself.
var errorCases = []errorCase{
	{"chan", "", `
//mpgen:interface
type Bad interface { Send(ctx context.Context, c chan int) error }`,
		[]string{"Bad.Send", "parameter c", "chan int", "channels"}},
	{"nested chan", "", `
type S struct { Name string; C []chan int }
//mpgen:interface
type Bad interface { Put(ctx context.Context, s S) error }`,
		[]string{"Bad.Put", "parameter s", "field C", "chan int"}},
	{"variadic", "", `
//mpgen:interface
type Bad interface { Sum(ctx context.Context, xs ...int) (int, error) }`,
		[]string{"Bad.Sum", "variadic", "xs ...int"}},
	{"unnamed param", "", `
//mpgen:interface
type Bad interface { Put(context.Context, string) error }`,
		[]string{"Bad.Put", "parameter 2 (string)", "no name"}},
	{"blank param", "", `
//mpgen:interface
type Bad interface { Put(ctx context.Context, _ time.Time) error }`,
		[]string{"Bad.Put", "time.Time", "no name"}},
	{"several results", "", `
//mpgen:interface
type Bad interface { Get(ctx context.Context) (int, string, error) }`,
		[]string{"Bad.Get", "(int, string, error)", "at most one result"}},
	{"no error result", "", `
//mpgen:interface
type Bad interface { Get(ctx context.Context) int }`,
		[]string{"Bad.Get", "last result must be error"}},
	{"no result", "", `
//mpgen:interface
type Bad interface { Ping() }`,
		[]string{"Bad.Ping", "last result must be error"}},
	{"error param", "", `
//mpgen:interface
type Bad interface { Put(ctx context.Context, e error) error }`,
		[]string{"Bad.Put", "parameter e", "type error"}},
	{"context not first", "", `
//mpgen:interface
type Bad interface { Put(s string, ctx context.Context) error }`,
		[]string{"Bad.Put", "parameter ctx", "context.Context must be the first"}},
	{"unexported type of another package", "", `
//mpgen:interface
type Bad interface { other.Hidden }`,
		[]string{"Bad.Peek", "parameter s", "other.secret", "unexported"}},
	{"unexported method", "", `
//mpgen:interface
type Bad interface { other.Private }`,
		[]string{"Bad.poke", "unexported"}},
	{"unnamed func type", "", `
//mpgen:interface
type Bad interface { Each(ctx context.Context, fn func(int) error) error }`,
		[]string{"Bad.Each", "parameter fn", "func(int) error", "named func type"}},
	{"unnamed interface type", "", `
//mpgen:interface
type Bad interface { Use(ctx context.Context, v interface{ M() }) error }`,
		[]string{"Bad.Use", "parameter v", "interface{M()}", "named interface"}},
	{"func type with unnamed params", "", `
type Fn func(context.Context, int) error
//mpgen:interface
type Bad interface { Each(ctx context.Context, fn Fn) error }`,
		[]string{"Fn:", "parameter 2 (int)", "no name"}},
	{"referenced interface", "", `
type Inner interface { Get() int }
//mpgen:interface
type Bad interface { Inner(ctx context.Context) (Inner, error) }`,
		[]string{"Inner.Get", "last result must be error"}},
	{"generic interface", "", `
//mpgen:interface
type Bad[T any] interface { Get(ctx context.Context) (T, error) }`,
		[]string{"Bad", "generic"}},
	{"generic instance", "", `
type Getter[T any] interface { Get(ctx context.Context) (T, error) }
//mpgen:interface
type Bad interface { Getter(ctx context.Context) (Getter[int], error) }`,
		[]string{"Bad.Getter", "Getter[int]", "generic"}},
	{"BridgeRemote", "", `
//mpgen:interface
type Bad interface { BridgeRemote() error }`,
		[]string{"Bad.BridgeRemote", "bridge.Proxy"}},
	{"complex", "", `
//mpgen:interface
type Bad interface { Put(ctx context.Context, c complex128) error }`,
		[]string{"Bad.Put", "complex128"}},
	{"map key", "", `
//mpgen:interface
type Bad interface { Put(ctx context.Context, m map[bool]int) error }`,
		[]string{"Bad.Put", "map[bool]int", "map keys"}},
	{"duplicate wire param", "", `
//mpgen:interface
type Bad interface { Put(ctx context.Context, ID int, id int) error }`,
		[]string{"Bad.Put", "ID and id", `"id"`}},
	{"duplicate wire method", "", `
//mpgen:interface
type Bad interface {
	ID(ctx context.Context) (int, error)
	Id(ctx context.Context) (int, error)
}`,
		[]string{"Bad.Id", "ID and Id", `"id"`}},
	{"unknown directive", "", `
//mpgen:interface
//mpgen:bogus
type Bad interface { Get(ctx context.Context) (int, error) }`,
		[]string{"Bad", "//mpgen:bogus"}},
	{"bad wire name", "", `
//mpgen:interface
//mpgen:name a.b
type Bad interface { Get(ctx context.Context) (int, error) }`,
		[]string{"Bad", `"a.b"`}},
	{"same wire name", "", `
//mpgen:interface
//mpgen:name Good
type Bad interface { Get(ctx context.Context) (int, error) }
//mpgen:interface
type Good interface { Get(ctx context.Context) (int, error) }`,
		[]string{`wire name "Good" is also the name of`}},
	{"serial func", "", `
//mpgen:interface
//mpgen:serial
type Fn func(ctx context.Context, i int) error`,
		[]string{"Fn", "serial"}},
	{"name clash", "", `
type badProxy int
//mpgen:interface
type Bad interface { Get(ctx context.Context) (int, error) }`,
		[]string{"badProxy", "-prefix"}},
	{"generated names clash", "", `
//mpgen:interface
type URLFetcher interface { Get(ctx context.Context) (int, error) }
//mpgen:interface
type UrlFetcher interface { Get(ctx context.Context) (int, error) }`,
		[]string{"urlFetcherProxy", "URLFetcher and UrlFetcher"}},
	{"nothing marked", "", `
type Bad interface { Get(ctx context.Context) (int, error) }`,
		[]string{"no type marked //mpgen:interface"}},
	{"-type missing", "Nope", `
type Bad interface { Get(ctx context.Context) (int, error) }`,
		[]string{"-type", `"Nope"`}},
	{"-type struct", "S", `
type S struct{}`,
		[]string{"-type", "S", "neither an interface nor a func type"}},
	{"several errors", "", `
//mpgen:interface
type Bad interface {
	A(ctx context.Context, c chan int) error
	B(ctx context.Context) int
}`,
		[]string{"Bad.A", "chan int", "Bad.B", "last result"}},
}

// intoErrorCases are generated into another package, testdata/errs/into:
// the types the generated code names must be exported.
var intoErrorCases = []errorCase{
	{"unexported param type", "", `
type secret struct{ N int }
//mpgen:interface
type Bad interface { Peek(ctx context.Context, s secret) error }`,
		[]string{"case.go:", "Bad.Peek", "parameter s", "type errs.secret is unexported", "package into"}},
	{"unexported element type", "", `
type secret int
//mpgen:interface
type Bad interface { List(ctx context.Context) (map[string][]secret, error) }`,
		[]string{"Bad.List", "result", "in map[string][]errs.secret", "type errs.secret is unexported", "package into"}},
	{"unexported field type", "", `
type level int
type Item struct { Level level }
//mpgen:interface
type Bad interface { Put(ctx context.Context, item *Item) error }`,
		[]string{"Bad.Put", "parameter item", "field Level", "type errs.level is unexported"}},
	{"unexported alias", "", `
type count = int
//mpgen:interface
type Bad interface { Add(ctx context.Context, n count) error }`,
		[]string{"Bad.Add", "parameter n", "type errs.count is unexported"}},
	{"unexported interface mentioned", "", `
type sub interface { Stop(ctx context.Context) error }
//mpgen:interface
type Bad interface { Watch(ctx context.Context) (sub, error) }`,
		[]string{"Bad.Watch", "result", "type errs.sub is unexported", "package into"}},
	{"unexported func type mentioned", "", `
type visit func(ctx context.Context, n int) error
//mpgen:interface
type Bad interface { Each(ctx context.Context, fn visit) error }`,
		[]string{"Bad.Each", "parameter fn", "type errs.visit is unexported"}},
	{"unexported interface marked", "", `
//mpgen:interface
type bad interface { Get(ctx context.Context) (int, error) }`,
		[]string{"case.go:", "bad: is unexported", "package into", "generate into package errs"}},
	{"unexported interface by -type", "bad", `
type bad interface { Get(ctx context.Context) (int, error) }`,
		[]string{"bad: is unexported", "package into"}},
	{"unexported type of a third package", "", `
//mpgen:interface
type Bad interface { other.Hidden }`,
		[]string{"Bad.Peek", "parameter s", "other.secret", "unexported in another package"}},
	{"name clash in the package", "", `
//mpgen:interface
type Taken interface { Get(ctx context.Context) (int, error) }`,
		[]string{"into.go:", "takenProxy is declared here", "for Taken", "-prefix"}},
}

// TestErrors loads every case at once, each as a package of its own under
// testdata/errs, and checks what generating it reports.
func TestErrors(t *testing.T) {
	dir := filepath.Join("testdata", "errs")
	into, err := filepath.Abs(filepath.Join(dir, "into"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := map[string][]byte{}
	var patterns []string
	cases := slices.Concat(errorCases, intoErrorCases)
	for i, c := range cases {
		sub := fmt.Sprintf("case%02d", i)
		path, err := filepath.Abs(filepath.Join(dir, sub, "case.go"))
		if err != nil {
			t.Fatal(err)
		}
		overlay[path] = []byte(`package errs

import (
	"context"
	"time"

	"github.com/mpbridge/mpbridge/cmd/mpgen/testdata/errs/other"
)

var (
	_ context.Context
	_ time.Time
	_ other.Hidden
)
` + c.src + "\n")
		patterns = append(patterns, "./"+sub)
	}
	pkgs, stale, err := load(config{dir: dir, patterns: patterns, overlay: overlay})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]*packages.Package{}
	for _, p := range pkgs {
		byPath[p.PkgPath] = p
	}
	for i, c := range cases {
		name := c.name
		if i >= len(errorCases) {
			name = "into/" + name
		}
		t.Run(name, func(t *testing.T) {
			pkg := byPath[fmt.Sprintf("github.com/mpbridge/mpbridge/cmd/mpgen/testdata/errs/case%02d", i)]
			if pkg == nil {
				t.Fatal("package not loaded")
			}
			var cfg config
			if i >= len(errorCases) {
				cfg.outDir = into
			}
			if c.types != "" {
				cfg.types = strings.Split(c.types, ",")
			}
			f, err := generatePackage(pkg, cfg, stale)
			if err == nil {
				t.Fatalf("no error; generated:\n%s", f.data)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if c.name == "several errors" && strings.Index(err.Error(), "Bad.A") > strings.Index(err.Error(), "Bad.B") {
				t.Errorf("errors are not in source order:\n%v", err)
			}
			if c.types == "" && !strings.HasPrefix(err.Error(), "mpgen:") && !strings.Contains(err.Error(), ".go:") {
				t.Errorf("error has no position:\n%v", err)
			}
		})
	}
}

// TestPrefixAvoidsClash checks that -prefix resolves a name clash.
func TestPrefixAvoidsClash(t *testing.T) {
	dir := filepath.Join("testdata", "errs")
	path, err := filepath.Abs(filepath.Join(dir, "case.go"))
	if err != nil {
		t.Fatal(err)
	}
	src := "package errs\n\nimport \"context\"\n\ntype badProxy int\n\n//mpgen:interface\ntype Bad interface { Get(ctx context.Context) (int, error) }\n"
	files, err := generate(config{dir: dir, patterns: []string{"."}, prefix: "mp", overlay: map[string][]byte{path: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(files[0].data), "type mpBadProxy struct") {
		t.Errorf("generated:\n%s", files[0].data)
	}
}
