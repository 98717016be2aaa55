package pluginhost_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/pluginhost"
)

func TestParseManifest(t *testing.T) {
	m, err := pluginhost.ParseManifest([]byte(`{"argv": ["./p"], "limits": {"commandTimeout": "250ms"}}`), "/plugins", "p")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "p" || m.Framing != "lines" || m.Dir != "/plugins" ||
		time.Duration(m.Limits.CommandTimeout) != 250*time.Millisecond ||
		time.Duration(m.Limits.Liveness) != pluginhost.DefaultLiveness || m.Limits.LogRate != pluginhost.DefaultLogRate {
		t.Errorf("defaults not filled in: %+v", m)
	}
	for _, c := range []struct{ json, want string }{
		{`{"argv": ["p"], "argz": 1}`, `unknown object member name "argz"`},
		{`{"argv": []}`, "argv is missing"},
		{`{"argv": ["p"], "framing": "xml"}`, `framing "xml"`},
		{`{"argv": ["p"], "permissions": ["exec"]}`, `unknown permission "exec"`},
		{`{"argv": ["p"], "name": "a b"}`, `name "a b"`},
		{`{"argv": ["p"], "limits": {"commandTimeout": "soon"}}`, "soon"},
		{`{"argv": ["p"], "limits": {"commandTimeout": "-1s"}}`, "commandTimeout must be positive"},
		{`{"argv": ["p"], "limits": {"logRate": -5}}`, "logRate must be at least 1"},
		{`{"argv": ["p"]`, "EOF"},
	} {
		_, err := pluginhost.ParseManifest([]byte(c.json), "", "p")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.json, err, c.want)
		}
	}
}

func TestLoadDirKeepsTheGoodOnes(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"a.json":    `{"argv": ["a"]}`,
		"b.json":    `{"argv": ["b"], "name": "a"}`,
		"c.json":    `{"argv": 1}`,
		"d.json":    `{"argv": ["d"]}`,
		"notes.txt": `not a manifest`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := pluginhost.LoadDir(dir)
	if len(ms) != 2 || ms[0].Name != "a" || ms[1].Name != "d" {
		t.Errorf("loaded %d manifests: %+v", len(ms), ms)
	}
	if err == nil || !strings.Contains(err.Error(), `b.json: plugin name "a" is already used`) || !strings.Contains(err.Error(), "c.json") {
		t.Errorf("error: %v", err)
	}
	if _, err := pluginhost.LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing folder is not an error")
	}
}

func TestLSPFraming(t *testing.T) {
	m := testManifest("lsp")
	m.Framing = "lsp"
	h, _, _ := startHost(t, nil, m)
	if got := execute(t, h, "lsp.echo", "framed"); got != "framed" {
		t.Errorf("lsp.echo: %q", got)
	}
}

// TestExamplePlugins runs the example plugins' folder as shipped: the Go
// plugin (served by the test binary instead of mphost), the Python one
// when python3 is installed and the Node one when node is.
func TestExamplePlugins(t *testing.T) {
	ms, err := pluginhost.LoadDir("examples/plugins")
	if err != nil {
		t.Fatal(err)
	}
	var use []*pluginhost.Manifest
	for _, m := range ms {
		switch m.Name {
		case "hello":
			m.Argv = []string{testExe, "hello"}
		case "shout", "reverse":
			if _, err := exec.LookPath(m.Argv[0]); err != nil {
				t.Logf("%s: %s is not installed; skipping it", m.Name, m.Argv[0])
				continue
			}
		}
		m.Limits.ActivateTimeout = patient.ActivateTimeout
		m.Limits.Liveness = patient.Liveness
		use = append(use, m)
	}
	h, _, log := startHost(t, nil, use...)
	want := map[string][2]string{
		"hello":   {"hello", "Hello, plugins!"},
		"shout":   {"shout", "PLUGINS!"},
		"reverse": {"reverse", "plugins, hello"},
	}
	for _, m := range use {
		w := want[m.Name]
		args := []string{"plugins"}
		if m.Name == "reverse" {
			args = []string{"hello", "plugins,"}
		}
		if got := execute(t, h, w[0], args...); got != w[1] {
			t.Errorf("%s: %q, want %q", w[0], got, w[1])
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for _, m := range use {
		if !strings.Contains(log.String(), m.Name+": info: deactivated") {
			t.Errorf("%s was not deactivated in order; log:\n%s", m.Name, log)
		}
	}
	// Handles were given back cleanly: no complaints about releases.
	if strings.Contains(log.String(), "release") {
		t.Errorf("release trouble in the log:\n%s", log)
	}
}
