package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestWalletLauncherFlags: -wallet-launcher is split into words as a shell
// would, bad quoting is refused, and both wallet flags need -wallet=spawn.
func TestWalletLauncherFlags(t *testing.T) {
	c, err := parse([]string{"-serve", `-wallet-launcher=ssh -p 2222 -o "ProxyJump=a b" host`, "-wallet-path=/opt/mp/mpwallet"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ssh", "-p", "2222", "-o", "ProxyJump=a b", "host"}; !slices.Equal(c.launcher, want) || c.walletPath != "/opt/mp/mpwallet" {
		t.Errorf("launcher %q, path %q; want %q, /opt/mp/mpwallet", []string(c.launcher), c.walletPath, want)
	}
	if c, err := parse([]string{"-serve"}, &bytes.Buffer{}); err != nil || len(c.launcher) != 0 || c.walletPath != "mpwallet" {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-serve", "-wallet-launcher=ssh 'host"}, `bad command line "ssh 'host"`},
		{[]string{"-serve", "-wallet=inproc", "-wallet-launcher=ssh host"}, "-wallet-launcher and -wallet-path are for -wallet=spawn, not -wallet=inproc"},
		{[]string{"-serve", "-wallet=none", "-wallet-path=/x"}, "are for -wallet=spawn, not -wallet=none"},
	} {
		var stderr bytes.Buffer
		if code := run(bad.args, &stderr); code != 2 || !strings.Contains(stderr.String(), bad.want) {
			t.Errorf("mpnode %q: exit %d, %q; want 2 and %q", bad.args, code, stderr.String(), bad.want)
		}
	}
	var help bytes.Buffer
	run([]string{"-h"}, &help)
	for _, f := range []string{"-wallet-launcher command", "-wallet-path program"} {
		if !strings.Contains(help.String(), f) {
			t.Errorf("mpnode -h does not list %q", f)
		}
	}
}
