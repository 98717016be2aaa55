// Package version gives every command of the project the same -version
// flag: the module version and the VCS revision that runtime/debug's build
// information records, and the Go toolchain that built the binary.
package version

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// String describes the running binary, named name, in one line, e.g.
//
//	mpnode github.com/mpbridge/mpbridge (devel) revision 57d9abb1c0de (2026-12-04T05:00:00Z, modified) go1.26.0 linux/amd64
//
// A binary built without VCS stamping (go build -buildvcs=false, or
// outside a repository) says "revision unknown".
func String(name string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("%s (no build information) %s %s/%s", name, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	return format(name, bi)
}

func format(name string, bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	var b strings.Builder
	mod, ver := bi.Main.Path, bi.Main.Version
	if mod == "" {
		mod = bi.Path
	}
	if ver == "" {
		ver = "(devel)"
	}
	fmt.Fprintf(&b, "%s %s %s", name, mod, ver)
	if rev := settings["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, " revision %s", rev)
		var detail []string
		if t := settings["vcs.time"]; t != "" {
			detail = append(detail, t)
		}
		if settings["vcs.modified"] == "true" {
			detail = append(detail, "modified")
		}
		if len(detail) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(detail, ", "))
		}
	} else {
		b.WriteString(" revision unknown")
	}
	goVer := bi.GoVersion
	if goVer == "" {
		goVer = runtime.Version()
	}
	fmt.Fprintf(&b, " %s %s/%s", goVer, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// Flag adds -version to fs; the command prints String and exits 0 when
// it is set.
func Flag(fs *flag.FlagSet) *bool {
	return fs.Bool("version", false, "print the version and VCS revision of this binary and exit")
}
