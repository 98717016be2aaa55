// Mpgen generates the glue between Go interfaces and a bridge connection:
// for each interface, a typed proxy that turns method calls into JSON-RPC
// requests, a dispatcher that serves a local value without reflection, and
// the OpenRPC description that rpc.discover lists. It registers them with
// the callbacks package, so application code passes and calls plain Go
// interfaces and never sees the wire.
//
// Usage:
//
//	mpgen [-out dir] [-o file] [-type T1,T2] [-prefix p] [packages]
//	mpgen doc [-o file] EXE...
//
// Packages default to the one in the current directory ("."), which is
// what a //go:generate line needs:
//
//	//go:generate go run github.com/mpbridge/mpbridge/cmd/mpgen
//
// By default the code goes into the interfaces' own package. With -out it
// goes into the package in another directory instead, so that a package
// of plain interfaces keeps no IPC code (see "Generating into another
// package" below).
//
// Mpgen generates the types that carry a //mpgen:interface comment, or
// those named with -type. Three directives may appear in a type's doc
// comment:
//
//	//mpgen:interface   generate this interface (or func type)
//	//mpgen:name Foo    its name on the wire (default: the Go type name)
//	//mpgen:serial      its objects serve one call at a time, in order
//
// For example:
//
//	// Wallet holds keys and funds.
//	//
//	//mpgen:interface
//	type Wallet interface {
//		GetBalance(ctx context.Context) (int64, error)
//		SendToAddress(ctx context.Context, address string, amount int64) (string, error)
//	}
//
// is served as "Wallet.getBalance" and "Wallet.sendToAddress" with the
// params "address" and "amount". A method's wire name is its Go name with
// the leading capitals lowered (callbacks.WireName: GetBalance is
// getBalance, ID is id, URLPath is urlPath); a param's wire name is the Go
// parameter name treated the same way. Interfaces and named func types of
// the same package that a generated method mentions, at any depth, are
// generated too; those of other packages must be registered where their
// bindings live (generated, or by hand), under their Go type name.
//
// The output is one file per package, <package>_mpgen.go in the package's
// directory (or in -out), or the file given with -o (relative to the
// current directory; one package only). It starts with "// Code generated
// by mpgen. DO NOT EDIT.", is gofmt'd, and holds, per interface Foo:
//
//   - fooProxy, which implements Foo, bridge.Proxy and io.Closer. Each
//     method sends its Go parameters as named params and decodes the
//     result; a method without a context.Context uses
//     context.Background(). Close gives back the remote reference, so
//     callbacks.Release works too; if Foo itself has a Close method, the
//     proxy's Close calls the remote one and then gives back the
//     reference (the object's Close then runs twice on the serving side:
//     once called, once released, so it should be idempotent);
//   - fooObject, the bridge.Object that serves a local Foo without
//     reflection: one small function per method decodes the params by
//     name (a pointer param may be left out), rejects unknown ones, calls
//     the method and returns its result. It also reports the Go interface
//     (InterfaceType, which callbacks.Registry.DiscoverObject uses), the
//     value it wraps (Unwrap: a handle coming back is the original value),
//     whether it is serial, and forwards Close, run when the peer releases
//     its last reference, to the value's Close method if it has one;
//   - OpenRPCFoo, for an exported Foo, which returns the OpenRPC method
//     objects of Foo as a JSON array, with the param names and the JSON
//     Schemas that callbacks.Schema gives for the Go types (interfaces
//     and funcs are handles), as rpc.discover lists them;
//   - a callbacks.Register call in the file's init function, with the
//     wire name, the param names, the proxy and the dispatcher, and the
//     doc comments of the interface and its methods (Doc and Docs), which
//     rpc.discover gives as descriptions.
//
// A named func type F gets the same: fProxy, a constructor of the func that
// calls a remote F through its method "F.call", fObject, its dispatcher,
// a callbacks.RegisterFuncType call, and, if exported, OpenRPCF. The
// -prefix flag is
// prepended to the names of the unexported declarations (pFooProxy rather
// than fooProxy) when they would clash with the names of the package
// generated into; mpgen reports such a clash. Imports are named so that
// they hide no name of that package (context2 if it declares context),
// and parameters so that they hide no import.
//
// Supported in method signatures: a context.Context first parameter, which
// carries cancellation; error as the last result, which every method must
// have (a remote call can always fail); at most one other result; named
// parameters of basic types, strings, structs (their exported fields),
// pointers (optional params), slices, arrays, maps with string or number
// keys, []byte (base64), time.Time, named types of those, the empty
// interface, and named interface or func types (crossing as handles).
// Anything else, such as channels, variadic or unnamed parameters,
// several results, unnamed func or interface types, or unexported types
// of other packages, is reported with the method and the type at fault,
// and nothing is written.
//
// The JSON Schemas come from package internal/openrpc, the one mapping
// from Go types to schemas, which callbacks.Schema uses at run time too.
//
// # Documenting an API
//
// "mpgen doc EXE..." spawns each EXE with -serve, asks it rpc.discover,
// and writes Markdown (to standard output, or to the file -o names): per
// executable, a table of the interfaces it serves and who serves them
// ("x-served-by": the executable, the caller, or either), then every
// method with its doc comment, params and result. docs/API.md is written
// this way:
//
//	go build -o bin/ ./cmd/... && ./bin/mpgen doc -o docs/API.md ./bin/mpnode ./bin/mpwallet
//
// # Generating into another package
//
// With -out dir, the file for each package P goes into the package in
// dir: <P>_mpgen.go there, or the file -o names (which lets
// "-out . -o /dev/stdout" show the output). The generated file declares
// that package, imports P and qualifies every name of P it uses (P.Foo,
// P.Block), as it does those of any other package. Package node keeps
// only its interfaces, and node/nodeipc holds their bindings:
//
//	// Package nodeipc registers the interfaces of node and nodeinit.
//	package nodeipc
//
//	//go:generate go run github.com/mpbridge/mpbridge/cmd/mpgen -out . .. ../nodeinit
//
// writes node_mpgen.go and nodeinit_mpgen.go into nodeipc, and importing
// nodeipc registers both packages' interfaces: their init functions run.
// The declarations and wire names are those of the default mode; the
// OpenRPC accessors are nodeipc.OpenRPCNode and so on.
//
// A file in another package can name only exported types, so there every
// interface and func type generated must be exported, and so must every
// named type of P that a parameter or result mentions, at any depth
// (including the types of exported struct fields, as for the types of any
// other package): mpgen reports the method and the type that is not.
//
// The package in dir is parsed, not type-checked, for its name and the
// names it declares; a directory without Go files gives the package its
// own name. The files generated into one package in one run are checked
// against each other; list every package whose bindings go there in one
// mpgen command, since a separate run does not see the names of the
// others' files. Mpgen refuses to overwrite a file it did not generate.
//
// When loading a package, mpgen ignores the files it generated earlier
// (recognised by their first line), so a stale output never stops it. The
// tests of cmd/mpgen compare its output for internal/gentest/fixture, and
// for internal/gentest/plain into plain/plainipc, with the committed
// files (go test ./cmd/mpgen -update rewrites them), and the tests of
// internal/gentest run that code over a connection.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mpbridge/mpbridge/internal/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "doc" {
		os.Exit(docMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	err := run(os.Args[1:], "", os.Stderr, func(path string, data []byte) error {
		return os.WriteFile(path, data, 0o666)
	})
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage error")

// run runs mpgen with the command line args in directory dir ("" for the
// current one), writing each output file with write.
func run(args []string, dir string, stderr io.Writer, write func(path string, data []byte) error) error {
	cfg, err := parseArgs(args, dir, stderr)
	if err != nil {
		return err
	}
	files, err := generate(cfg)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := write(f.path, f.data); err != nil {
			return fmt.Errorf("mpgen: %w", err)
		}
	}
	return nil
}

// parseArgs parses the command line args of a run in directory dir.
func parseArgs(args []string, dir string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("mpgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("o", "", "output `file` (default <package>_mpgen.go in the package's directory, or in -out)")
	outDir := fs.String("out", "", "generate into the package in `directory` rather than the interfaces' own")
	typeList := fs.String("type", "", "comma-separated `names` of the types to generate (default: those marked //mpgen:interface)")
	prefix := fs.String("prefix", "", "`prefix` of the unexported names the generated code declares")
	showVersion := version.Flag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mpgen [-out dir] [-o file] [-type T1,T2] [-prefix p] [packages]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, errUsage
	}
	if *showVersion {
		fmt.Println(version.String("mpgen"))
		return config{}, flag.ErrHelp
	}
	cfg := config{dir: dir, patterns: fs.Args(), output: *output, outDir: *outDir, prefix: *prefix}
	if len(cfg.patterns) == 0 {
		cfg.patterns = []string{"."}
	}
	if *typeList != "" {
		cfg.types = strings.Split(*typeList, ",")
	}
	return cfg, nil
}
