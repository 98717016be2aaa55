package bytesize

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]int{
		"1": 1, "1048576": 1 << 20, "16MiB": 16 << 20, "16mib": 16 << 20, "16M": 16 << 20,
		"64k": 64 << 10, "1KB": 1000, "2 MB": 2e6, "1GiB": 1 << 30, "512b": 512, " 3KiB ": 3 << 10,
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "MiB", "1.5MiB", "16 parsecs", "2GiB", "99999999999"} {
		if n, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, n)
		}
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, n := range []int{1, 1000, 1 << 10, 3 << 20, 16 << 20, 1 << 30, 1<<20 + 1} {
		got, err := Parse(Format(n))
		if err != nil || got != n {
			t.Errorf("Parse(Format(%d)=%q) = %d, %v", n, Format(n), got, err)
		}
	}
	if got := Format(16 << 20); got != "16MiB" {
		t.Errorf("Format(16MiB) = %q", got)
	}
}

func TestVar(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var n int
	Var(fs, &n, "max-message", 16<<20, "largest message")
	if n != 16<<20 {
		t.Fatalf("default not stored: %d", n)
	}
	if err := fs.Parse([]string{"-max-message=1KiB"}); err != nil || n != 1024 {
		t.Fatalf("parse: %d, %v", n, err)
	}
	err := fs.Parse([]string{"-max-message=lots"})
	if err == nil || !strings.Contains(err.Error(), `invalid size "lots"`) {
		t.Fatalf("bad size: %v", err)
	}
	if u := fs.Lookup("max-message").DefValue; u != "16MiB" {
		t.Errorf("default shown as %q", u)
	}
}
