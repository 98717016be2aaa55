package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "give one of -serve and -connect"},
		{[]string{"-serve", "-connect=unix:/tmp/x"}, "give one of -serve and -connect"},
		{[]string{"-connect=nowhere"}, `bad address "nowhere"`},
		{[]string{"-serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"-connect=unix:/tmp/x", "-tls-ca=ca.pem"}, "-tls-ca is for -connect=tls:HOST:PORT"},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("mpwallet %v: exit %d, %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
	var help bytes.Buffer
	if code := run([]string{"-h"}, &help); code != 0 {
		t.Errorf("mpwallet -h: exit %d", code)
	}
	for _, f := range []string{"-connect ADDR", "unix:PATH, tcp:HOST:PORT or tls:HOST:PORT", "-cookiefile FILE", "-tls-ca FILE"} {
		if !strings.Contains(help.String(), f) {
			t.Errorf("mpwallet -h does not list %q:\n%s", f, help.String())
		}
	}
}

func TestConnectFails(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-connect=unix:" + t.TempDir() + "/none.sock"}, &stderr); code != 1 || !strings.Contains(stderr.String(), "none.sock") {
		t.Fatalf("exit %d, %q", code, stderr.String())
	}
}
