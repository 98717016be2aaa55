package version

import (
	"flag"
	"io"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/mpbridge/mpbridge", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "57d9abb1"},
			{Key: "vcs.time", Value: "2026-12-04T05:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := format("mpnode", bi)
	want := "mpnode github.com/mpbridge/mpbridge v1.2.3 revision 57d9abb1 (2026-12-04T05:00:00Z, modified) go1.26.0 "
	if !strings.HasPrefix(got, want) {
		t.Errorf("format = %q\nwant prefix %q", got, want)
	}
	bi.Settings, bi.Main.Version = nil, ""
	if got := format("mpnode", bi); !strings.Contains(got, "(devel) revision unknown go1.26.0") {
		t.Errorf("without VCS: %q", got)
	}
}

func TestStringNamesTheModule(t *testing.T) {
	// A test binary has build information whose main module is this one.
	if s := String("x"); !strings.HasPrefix(s, "x github.com/mpbridge/mpbridge") {
		t.Errorf("String = %q", s)
	}
}

func TestFlag(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	v := Flag(fs)
	if err := fs.Parse([]string{"-version"}); err != nil || !*v {
		t.Fatalf("-version: %v %v", *v, err)
	}
}
