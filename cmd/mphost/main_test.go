package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The test binary stands in for mphost as the demo's plugin.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "example-plugin" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

func TestDemo(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"demo"}, strings.NewReader(""), &out, &errs); code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, &out, &errs)
	}
	for _, want := range []string{"Hello, demo!", "(code -32002)", "restarts 1", "all plugins stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, &out)
		}
	}
	if !strings.Contains(errs.String(), "restarting in 100ms") {
		t.Errorf("the log does not show the restart:\n%s", &errs)
	}
}

func TestPrompt(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	manifest := fmt.Sprintf(`{"name": "hi", "argv": [%q, "example-plugin"], "permissions": ["registerCommand", "getSetting"], "settings": {"greeting": "Hi"}}`, exe)
	if err := os.WriteFile(filepath.Join(dir, "hi.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"argv": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	in := strings.NewReader("hello you\n:help\n:plugins\nnope\ncount\n:quit\nhello never\n")
	if code := run([]string{"-plugins", dir}, in, &out, &errs); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &out, &errs)
	}
	for _, want := range []string{
		"Hi, you!",                // the command's result
		"how often count was run", // :help lists commands
		"hi      running",         // :plugins
		`error: no such command "nope"`,
		"> 1\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &out)
		}
	}
	if strings.Contains(out.String(), "never") {
		t.Errorf("a command after :quit ran:\n%s", &out)
	}
	// The broken manifest is reported, the good one runs; showMessage is
	// not permitted, so the greeting is only returned, not shown.
	if !strings.Contains(errs.String(), "broken.json: plugin broken: argv is missing") {
		t.Errorf("the broken manifest is not reported:\n%s", &errs)
	}
	if strings.Contains(out.String(), "[hi]") {
		t.Errorf("a message was shown without permission:\n%s", &out)
	}
}

func TestUsage(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run(nil, strings.NewReader(""), &out, &errs); code != 2 || !strings.Contains(errs.String(), "usage: mphost") {
		t.Errorf("no arguments: exit %d, stderr %q", code, &errs)
	}
}
