package conformance_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	json "github.com/go-json-experiment/json"
	"go.uber.org/goleak"

	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/conformance"
	"github.com/mpbridge/mpbridge/internal/testsvc"
	"github.com/mpbridge/mpbridge/spawn"
)

// childEnv makes the test binary serve the test service on stdin and
// stdout instead of running tests: the Go child under test.
const childEnv = "MPBRIDGE_CONFORMANCE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(spawn.ServeStdio(callbacks.Export[testsvc.Init](&testsvc.Service{}), nil))
	}
	goleak.VerifyTestMain(m)
}

// goChild is the command line of the Go child.
func goChild(t testing.TB) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe}
}

// goChildEnv is the environment that makes the test binary a child. A
// race-enabled child would sleep 1 s at exit by default; each case ends
// with an exit.
func goChildEnv() []string {
	race := "atexit_sleep_ms=0"
	if v := os.Getenv("GORACE"); v != "" {
		race = v + " " + race
	}
	return []string{childEnv + "=1", "GORACE=" + race}
}

// pythonChild is the command line of the Python child, or skips.
func pythonChild(t testing.TB) []string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	script, err := filepath.Abs(filepath.Join("python", "child.py"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{py, script, "-serve"}
}

// timeout is the time allowed per expectation.
func timeout() time.Duration {
	if raceEnabled || os.Getenv("CI") != "" {
		return 10 * time.Second
	}
	return 5 * time.Second
}

// runSuite runs every case against command and reports each as a subtest.
func runSuite(t *testing.T, command []string, env []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep := conformance.Run(ctx, conformance.Config{
		Command:  command,
		Env:      env,
		Parallel: max(2, runtime.GOMAXPROCS(0)*2),
		Timeout:  timeout(),
		Out:      &out,
	})
	if testing.Verbose() {
		t.Logf("report:\n%s", out.String())
	}
	if !rep.TestInterface {
		t.Errorf("the child does not serve the test interface: %v", rep.DiscoverError)
	}
	for _, r := range rep.Results {
		t.Run(r.Name, func(t *testing.T) {
			switch r.Status {
			case conformance.StatusSkip:
				t.Skip(r.Reason)
			case conformance.StatusFail, conformance.StatusXFail:
				var b strings.Builder
				fmt.Fprintf(&b, "%s\npins: %s\nstep %d (%s): %s\n", r.Status, r.Pins, r.Step, r.StepKind, r.Reason)
				fmt.Fprintf(&b, "expected: %s\nactual:   %s\n", r.Expected, r.Actual)
				for _, e := range r.Transcript {
					fmt.Fprintf(&b, "  %5dms %s %s\n", e.AtMs, e.Dir, e.Text)
				}
				if r.Stderr != "" {
					fmt.Fprintf(&b, "stderr:\n%s", r.Stderr)
				}
				if r.Status == conformance.StatusXFail {
					t.Skip(b.String())
				}
				t.Error(b.String())
			}
		})
	}
	t.Logf("%s (%d ms)", rep.Summary(), rep.DurationMs)
}

// TestGoChild runs the whole suite against the Go implementation (the
// test service served by spawn.ServeStdio).
func TestGoChild(t *testing.T) {
	runSuite(t, goChild(t), goChildEnv())
}

// TestPythonChild runs the whole suite against the independent Python
// implementation in python/child.py.
func TestPythonChild(t *testing.T) {
	runSuite(t, pythonChild(t), nil)
}

func TestCasesLoad(t *testing.T) {
	cases, err := conformance.Cases()
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	levels := map[string]int{}
	for _, c := range cases {
		per[c.Section+" "+c.Group]++
		levels[c.Needs]++
	}
	if len(cases) < 80 {
		t.Errorf("only %d cases", len(cases))
	}
	t.Logf("%d cases: %v; by level %v", len(cases), per, levels)
}

// TestMainCLI checks the command line: output format, -run, -json, and the
// exit status.
func TestMainCLI(t *testing.T) {
	for _, kv := range goChildEnv() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	var stdout, stderr bytes.Buffer
	code := conformance.Main([]string{"-run", `^(W3|F1|H1) `, "-json", report, "--", goChild(t)[0]}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	want := "ok   F1 one message per line, answered one per line\nok   W3 parse error recovers\nok   H1 handle round trip\n3 passed, 0 failed\n"
	if got := stdout.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep conformance.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Passed != 3 || len(rep.Results) != 3 || !rep.TestInterface || rep.Results[1].Name != "W3 parse error recovers" || rep.Results[1].Pins == "" {
		t.Errorf("report: %+v", rep)
	}
}

// TestMainCLIFailures runs the suite against cat, which answers nothing
// right: protocol cases fail, test cases are skipped, the exit status is 1.
func TestMainCLIFailures(t *testing.T) {
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat")
	}
	var stdout, stderr bytes.Buffer
	code := conformance.Main([]string{"-run", `^(F1|H1) `, "-timeout", "300ms", "--", cat}, &stdout, &stderr)
	out := stdout.String()
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s%s", code, out, &stderr)
	}
	for _, want := range []string{
		"note: the child does not serve the test interface",
		"FAIL F1 one message per line, answered one per line\n",
		"     expected: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"$any\"}",
		"     actual:   {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.handles\"}",
		"skip H1 handle round trip (needs the test interface)\n",
		"0 passed, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code := conformance.Main([]string{"-nosuchflag"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if code := conformance.Main(nil, &stdout, &stderr); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
}
