package spawn

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mpbridge/mpbridge/internal/syncbuf"
)

// childEnv selects the child behaviour when the test binary is re-executed
// as a child by Start.
const childEnv = "SPAWN_TEST_CHILD"

// timeout bounds every wait in these tests; it is generous on purpose.
const timeout = 10 * time.Second

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		// Started as "<exe> -serve [args...]": no flags are parsed here.
		os.Exit(runChild(mode))
	}
	goleak.VerifyTestMain(m)
}

// runChild implements the child modes and returns the exit status.
func runChild(mode string) int {
	switch mode {
	case "echo": // copy stdin to stdout until EOF
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			return 1
		}
		return 0
	case "info": // report arguments and working directory as JSON
		wd, _ := os.Getwd()
		json.NewEncoder(os.Stdout).Encode(childInfo{Args: os.Args[1:], Dir: wd, Env: os.Getenv("SPAWN_TEST_EXTRA")})
		return 0
	case "stderr": // a few stderr lines, the last without a newline
		fmt.Fprint(os.Stderr, "starting\n\nsecond line\nno newline at end")
		return 0
	case "bigline": // a 1 MiB line, invalid UTF-8, then status 1
		os.Stderr.Write(append(bytes.Repeat([]byte("x"), 1<<20), '\n'))
		os.Stderr.Write([]byte("\xff\xfe bad\n"))
		os.Stderr.Write([]byte("done\n"))
		return 1
	case "exit3": // 25 numbered stderr lines, then status 3
		for i := 1; i <= 25; i++ {
			fmt.Fprintf(os.Stderr, "line %d\n", i)
		}
		return 3
	case "hang": // ignore stdin, never exit by itself
		fmt.Println("ready")
		time.Sleep(time.Hour)
		return 0
	case "sleep": // like hang, silently
		time.Sleep(time.Hour)
		return 0
	case "stubborn": // ignore stdin EOF and SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Hour)
		return 0
	case "grandchild": // leave a grandchild holding stdout and stderr
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"=sleep")
		cmd.Stdout = os.Stdout
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "started grandchild")
		fmt.Printf("%d\n", cmd.Process.Pid)
		return 0
	case "serve", "serve-print", "serve-fork": // serve testsvc on stdin/stdout (serve_test.go)
		return runServeChild(mode)
	case "middle": // spawn a serving grandchild, print its pid, then block
		return runMiddleChild()
	case "garbage", "garbage-banner", "close-stdout", "middle-busy", "serve-noisy": // fault_test.go
		return runFaultChild(mode)
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", mode)
		return 2
	}
}

type childInfo struct {
	Args []string
	Dir  string
	Env  string
}

// syncBuffer is a buffer safe for concurrent use.
type syncBuffer = syncbuf.Buffer

// testExe returns the absolute path of the test binary.
func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// startChild starts the test binary in the given child mode. Unless the
// caller set them, Stderr goes to a fresh buffer (returned) and Name is
// "child". The child is killed and reaped, and its stdio closed, at cleanup.
func startChild(t *testing.T, mode string, opts *Options) (*Process, *syncBuffer) {
	t.Helper()
	p, buf, err := startChildErr(t, mode, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return p, buf
}

// startChildErr is startChild for use outside the test goroutine.
func startChildErr(t *testing.T, mode string, opts *Options) (*Process, *syncBuffer, error) {
	if opts == nil {
		opts = &Options{}
	}
	o := *opts
	// Race-enabled binaries sleep a second at exit unless told not to.
	o.Env = append(append(os.Environ(), childEnv+"="+mode, "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"), o.Env...)
	var buf *syncBuffer
	if o.Stderr == nil {
		buf = &syncBuffer{}
		o.Stderr = buf
	}
	if o.Name == "" {
		o.Name = "child"
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	p, err := Start(exe, &o)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() {
		p.Kill()
		select {
		case <-p.Done():
		case <-time.After(timeout):
			t.Errorf("cleanup: %s not reaped", p.Name())
		}
		p.Stdin().Close()
		p.Stdout().Close()
	})
	return p, buf, nil
}

// waitDone fails the test if p is not reaped within timeout.
func waitDone(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(timeout):
		t.Fatalf("%s[%d] not done after %v", p.Name(), p.Pid(), timeout)
	}
}

// readLine reads one line from the child's stdout within timeout.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := r.ReadString('\n')
		ch <- result{s, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("reading child stdout: %v", res.err)
		}
		return strings.TrimSuffix(res.s, "\n")
	case <-time.After(timeout):
		// The goroutine ends when cleanup closes stdout.
		t.Fatal("no line from child stdout")
		return ""
	}
}

// exitError asserts that err is an *ExitError and returns it.
func exitError(t *testing.T, err error) *ExitError {
	t.Helper()
	var xe *ExitError
	if !errors.As(err, &xe) {
		t.Fatalf("error %v (%T) is not an *ExitError", err, err)
	}
	return xe
}

func TestEcho(t *testing.T) {
	p, _ := startChild(t, "echo", nil)
	if p.Pid() <= 0 {
		t.Fatalf("Pid = %d", p.Pid())
	}
	const msg = `{"jsonrpc":"2.0","id":1,"method":"ping"}` + "\n"
	if _, err := io.WriteString(p.Stdin(), msg); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, bufio.NewReader(p.Stdout())) + "\n"; got != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
	if err := p.Stdin().Close(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
	// The child's end of stdout is closed: the reader sees EOF.
	if b, err := io.ReadAll(p.Stdout()); err != nil || len(b) != 0 {
		t.Fatalf("rest of stdout = %q, %v", b, err)
	}
}

func TestInheritedEnvAndDefaultName(t *testing.T) {
	exe := testExe(t)
	// With a nil Options.Env the child inherits these.
	t.Setenv(childEnv, "info")
	t.Setenv("GORACE", os.Getenv("GORACE")+" atexit_sleep_ms=0")
	p, err := Start(exe, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stdout().Close()
	if got, want := p.Name(), filepath.Base(exe); got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	var info childInfo
	if err := json.NewDecoder(p.Stdout()).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if got, want := strings.Join(info.Args, " "), "-serve"; got != want {
		t.Errorf("args = %q, want %q", got, want)
	}
}

func TestArgsDirEnv(t *testing.T) {
	dir := t.TempDir()
	exe := testExe(t)
	env := append(os.Environ(), childEnv+"=info", "SPAWN_TEST_EXTRA=hello", "GORACE=atexit_sleep_ms=0")
	p, err := Start(exe, &Options{Args: []string{"a", "-b"}, Dir: dir, Env: env, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stdout().Close()
	var info childInfo
	if err := json.NewDecoder(p.Stdout()).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if got, want := strings.Join(info.Args, " "), "-serve a -b"; got != want {
		t.Errorf("args = %q, want %q", got, want)
	}
	wantDir, _ := filepath.EvalSymlinks(dir)
	if gotDir, _ := filepath.EvalSymlinks(info.Dir); gotDir != wantDir {
		t.Errorf("dir = %q, want %q", info.Dir, dir)
	}
	if info.Env != "hello" {
		t.Errorf("env SPAWN_TEST_EXTRA = %q, want hello", info.Env)
	}
}

func TestStderrPrefix(t *testing.T) {
	p, buf := startChild(t, "stderr", &Options{Name: "mpwallet"})
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
	pre := fmt.Sprintf("mpwallet[%d]: ", p.Pid())
	want := pre + "starting\n" + pre + "\n" + pre + "second line\n" + pre + "no newline at end\n"
	if got := buf.String(); got != want {
		t.Fatalf("stderr =\n%q\nwant\n%q", got, want)
	}
}

func TestStderrHugeLineAndInvalidUTF8(t *testing.T) {
	p, buf := startChild(t, "bigline", nil)
	waitDone(t, p)
	pre := fmt.Sprintf("child[%d]: ", p.Pid())
	out := buf.String()
	lines := strings.SplitAfter(out, "\n")
	if last := lines[len(lines)-1]; last != "" {
		t.Fatalf("output does not end in a newline: ...%q", last)
	}
	lines = lines[:len(lines)-1]
	xs := 0
	for i, l := range lines[:len(lines)-2] {
		if !strings.HasPrefix(l, pre) {
			t.Fatalf("line %d lacks prefix: %.40q", i, l)
		}
		body := strings.TrimSuffix(strings.TrimPrefix(l, pre), "\n")
		if len(body) > maxPiece {
			t.Fatalf("piece %d is %d bytes, want at most %d", i, len(body), maxPiece)
		}
		if strings.Trim(body, "x") != "" {
			t.Fatalf("piece %d has unexpected content %.40q", i, body)
		}
		xs += len(body)
	}
	if xs != 1<<20 {
		t.Errorf("forwarded %d x's, want %d", xs, 1<<20)
	}
	if got, want := lines[len(lines)-2], pre+"\xff\xfe bad\n"; got != want {
		t.Errorf("invalid UTF-8 line = %q, want %q", got, want)
	}
	if got, want := lines[len(lines)-1], pre+"done\n"; got != want {
		t.Errorf("last line = %q, want %q", got, want)
	}

	xe := exitError(t, p.Err())
	if xe.Code != 1 {
		t.Errorf("Code = %d, want 1", xe.Code)
	}
	wantTail := []string{strings.Repeat("x", maxTailLine), "\uFFFD bad", "done"}
	if fmt.Sprint(xe.Tail) != fmt.Sprint(wantTail) {
		t.Errorf("Tail = %.80q, want %.80q", xe.Tail, wantTail)
	}
}

func TestExitStatus(t *testing.T) {
	p, _ := startChild(t, "exit3", &Options{Name: "mpwallet"})
	waitDone(t, p)
	xe := exitError(t, p.Err())
	if want := fmt.Sprintf("mpwallet[%d] exited with status 3", p.Pid()); xe.Error() != want {
		t.Errorf("Error = %q, want %q", xe.Error(), want)
	}
	if xe.Name != "mpwallet" || xe.Pid != p.Pid() || xe.Code != 3 || xe.Signal != 0 {
		t.Errorf("ExitError = %+v", xe)
	}
	var want []string
	for i := 6; i <= 25; i++ {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	if fmt.Sprint(xe.Tail) != fmt.Sprint(want) {
		t.Errorf("Tail = %q, want %q", xe.Tail, want)
	}
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) {
		t.Errorf("Err does not unwrap to *exec.ExitError")
	}
	// Stop after exit returns the same error at once.
	if err := p.Stop(); err != p.Err() {
		t.Errorf("Stop = %v, want %v", err, p.Err())
	}
}

func TestTailLinesOption(t *testing.T) {
	p, _ := startChild(t, "exit3", &Options{TailLines: 3})
	waitDone(t, p)
	xe := exitError(t, p.Err())
	if want := []string{"line 23", "line 24", "line 25"}; fmt.Sprint(xe.Tail) != fmt.Sprint(want) {
		t.Errorf("Tail = %q, want %q", xe.Tail, want)
	}
}

func TestKill(t *testing.T) {
	p, _ := startChild(t, "hang", &Options{Name: "mpwallet"})
	readLine(t, bufio.NewReader(p.Stdout()))
	if err := p.Kill(); err != nil {
		t.Fatalf("Kill = %v", err)
	}
	waitDone(t, p)
	xe := exitError(t, p.Err())
	if want := fmt.Sprintf("mpwallet[%d] killed by signal 9", p.Pid()); xe.Error() != want {
		t.Errorf("Error = %q, want %q", xe.Error(), want)
	}
	if xe.Code != -1 || xe.Signal != syscall.SIGKILL {
		t.Errorf("Code, Signal = %d, %d; want -1, 9", xe.Code, xe.Signal)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill after exit = %v", err)
	}
}

// stopWithin runs p.Stop and fails the test if it does not return within d.
func stopWithin(t *testing.T, p *Process, d time.Duration) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- p.Stop() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("Stop did not return within %v", d)
		return nil
	}
}

func TestStopCooperative(t *testing.T) {
	// Long graces: Stop may only return in time if closing stdin suffices.
	p, _ := startChild(t, "echo", &Options{CloseGrace: time.Minute, TermGrace: time.Minute})
	go io.Copy(io.Discard, p.Stdout()) // ends at EOF when the child exits
	if err := stopWithin(t, p, timeout); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop returned")
	}
}

func TestStopEscalates(t *testing.T) {
	const grace = 200 * time.Millisecond
	p, _ := startChild(t, "stubborn", &Options{CloseGrace: grace, TermGrace: grace})
	readLine(t, bufio.NewReader(p.Stdout())) // SIGTERM is ignored from now on
	start := time.Now()
	err := stopWithin(t, p, 2*grace+time.Second)
	elapsed := time.Since(start)
	xe := exitError(t, err)
	if xe.Signal != syscall.SIGKILL {
		t.Fatalf("Stop = %v, want killed by SIGKILL", err)
	}
	if elapsed < 2*grace {
		t.Errorf("Stop escalated after %v, before CloseGrace+TermGrace", elapsed)
	}
}

func TestStopTermSuffices(t *testing.T) {
	// A child that ignores stdin but not SIGTERM dies of SIGTERM.
	const grace = 200 * time.Millisecond
	p, _ := startChild(t, "hang", &Options{CloseGrace: grace, TermGrace: time.Minute})
	readLine(t, bufio.NewReader(p.Stdout()))
	xe := exitError(t, stopWithin(t, p, timeout))
	if xe.Signal != syscall.SIGTERM {
		t.Fatalf("Stop = %v, want killed by SIGTERM", xe)
	}
}

func TestStopConcurrentAndRepeated(t *testing.T) {
	p, _ := startChild(t, "echo", nil)
	go io.Copy(io.Discard, p.Stdout())
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = p.Stop() })
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(timeout):
		t.Fatal("concurrent Stops did not return")
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("Stop #%d = %v", i, err)
		}
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop again = %v", err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("Kill after Stop = %v", err)
	}
}

func TestGrandchildHoldingStdio(t *testing.T) {
	p, buf := startChild(t, "grandchild", nil)
	line := readLine(t, bufio.NewReader(p.Stdout()))
	gpid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("grandchild pid %q: %v", line, err)
	}
	t.Cleanup(func() { syscall.Kill(gpid, syscall.SIGKILL) })
	// The child exits right after printing; the grandchild keeps stdout and
	// stderr open for an hour.
	select {
	case <-p.Done():
	case <-time.After(waitDelay + time.Second):
		t.Fatalf("Done not closed within %v while a grandchild holds stderr", waitDelay+time.Second)
	}
	if err := p.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	if want := fmt.Sprintf("child[%d]: started grandchild\n", p.Pid()); buf.String() != want {
		t.Errorf("stderr = %q, want %q", buf.String(), want)
	}
}

func TestNoFDInheritance(t *testing.T) {
	// Start A and B concurrently. Had B inherited the write end of A's
	// stdin, closing ours would not give A EOF.
	var a, b *Process
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() { a, _, errA = startChildErr(t, "echo", nil) })
	wg.Go(func() { b, _, errB = startChildErr(t, "echo", nil) })
	wg.Wait()
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, a.Stdout())
	if err := a.Stdin().Close(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, a)
	if err := a.Err(); err != nil {
		t.Errorf("A: %v", err)
	}
	select {
	case <-b.Done():
		t.Fatal("B exited when A's stdin was closed")
	default:
	}
	// B still works.
	io.WriteString(b.Stdin(), "still here\n")
	if got := readLine(t, bufio.NewReader(b.Stdout())); got != "still here" {
		t.Errorf("B echoed %q", got)
	}
	b.Stdin().Close()
	waitDone(t, b)
	if err := b.Err(); err != nil {
		t.Errorf("B: %v", err)
	}
}

func TestSharedStderrWriter(t *testing.T) {
	// Two children writing to one writer: every Write is one whole line.
	w := &lineCheckWriter{}
	p1, _ := startChild(t, "exit3", &Options{Stderr: w})
	p2, _ := startChild(t, "exit3", &Options{Stderr: w})
	waitDone(t, p1)
	waitDone(t, p2)
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	if n := w.Count(); n != 50 {
		t.Errorf("got %d lines, want 50", n)
	}
}

// lineCheckWriter checks that each Write is exactly one prefixed line.
type lineCheckWriter struct {
	mu    sync.Mutex
	n     int
	first error
}

func (w *lineCheckWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	if w.first == nil && (bytes.IndexByte(p, '\n') != len(p)-1 || !bytes.HasPrefix(p, []byte("child["))) {
		w.first = fmt.Errorf("write %d is not one prefixed line: %q", w.n, p)
	}
	return len(p), nil
}

func (w *lineCheckWriter) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *lineCheckWriter) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first
}

func TestStartMissing(t *testing.T) {
	for _, name := range []string{
		"mp-no-such-program-xyz",
		filepath.Join(t.TempDir(), "mp-no-such-program-xyz"),
	} {
		p, err := Start(name, nil)
		if err == nil {
			p.Kill()
			<-p.Done()
			t.Fatalf("Start(%q) succeeded", name)
		}
		if !strings.Contains(err.Error(), "mp-no-such-program-xyz") {
			t.Errorf("Start(%q) error %q does not name the program", name, err)
		}
	}
}

// writeFile creates dir/name with the given permissions.
func writeFile(t *testing.T, dir, name string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // umask-proof
		t.Fatal(err)
	}
	return path
}

func TestLookPath(t *testing.T) {
	exeDir, pathDir1, pathDir2 := t.TempDir(), t.TempDir(), t.TempDir()
	path := strings.Join([]string{pathDir1, "relative/dir", "", pathDir2}, string(os.PathListSeparator))

	beside := writeFile(t, exeDir, "both", 0o755)
	writeFile(t, pathDir1, "both", 0o755)
	inPath := writeFile(t, pathDir2, "onlypath", 0o755)
	writeFile(t, exeDir, "noexec", 0o644)
	noexecInPath := writeFile(t, pathDir2, "noexecbeside", 0o755)
	writeFile(t, exeDir, "noexecbeside", 0o644)
	if err := os.Mkdir(filepath.Join(exeDir, "isdir"), 0o755); err != nil {
		t.Fatal(err)
	}

	found := []struct{ name, want string }{
		{"both", beside},               // beside the executable wins over PATH
		{"onlypath", inPath},           // then PATH, in order
		{"noexecbeside", noexecInPath}, // a non-executable file is skipped
		{beside, beside},               // a path is used as is
	}
	for _, tc := range found {
		got, err := lookPath(tc.name, exeDir, path)
		if err != nil || got != tc.want {
			t.Errorf("lookPath(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}

	missing := []struct {
		name     string
		contains []string
	}{
		{"nothere", []string{`"nothere"`, exeDir, pathDir1, pathDir2}},
		{"noexec", []string{`"noexec"`, "not executable", exeDir}},
		{"isdir", []string{`"isdir"`, "is a directory"}},
		{filepath.Join(exeDir, "noexec"), []string{"noexec", "not executable"}},
		{filepath.Join(exeDir, "nothere"), []string{"nothere", "no such file"}},
		{filepath.Join(exeDir, "isdir"), []string{"isdir", "is a directory"}},
		{"", []string{"empty"}},
	}
	for _, tc := range missing {
		got, err := lookPath(tc.name, exeDir, path)
		if err == nil {
			t.Errorf("lookPath(%q) = %q, want an error", tc.name, got)
			continue
		}
		for _, s := range tc.contains {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("lookPath(%q) error %q does not contain %q", tc.name, err, s)
			}
		}
	}
	if _, err := lookPath("nothere", exeDir, path); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("not-found error %v does not wrap exec.ErrNotFound", err)
	}
	if strings.Contains(fmt.Sprint(lookPath("nothere", exeDir, path)), "relative/dir") {
		t.Errorf("relative PATH entry was searched")
	}

	// A relative name with a separator becomes absolute.
	t.Chdir(exeDir)
	if got, err := lookPath("./both", "", ""); err != nil || got != beside {
		t.Errorf(`lookPath("./both") = %q, %v; want %q`, got, err, beside)
	}
}

func TestLookPathBesideExecutable(t *testing.T) {
	exe := testExe(t)
	resolved, err := filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", "")
	got, err := LookPath(filepath.Base(resolved))
	if err != nil || got != resolved {
		t.Fatalf("LookPath(%q) = %q, %v; want %q", filepath.Base(resolved), got, err, resolved)
	}
}
