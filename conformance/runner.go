package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config says what to run the suite against.
type Config struct {
	// Command is the child to start for each case, e.g.
	// {"mpbridge", "-serve"}; it must serve on its stdin and stdout.
	Command []string
	// Env is added to the child's environment; Dir is its working
	// directory.
	Env []string
	Dir string
	// Run selects the cases whose names match this regular expression.
	Run string
	// Verbose shows every case's transcript.
	Verbose bool
	// Parallel is the number of children run at once (default 4).
	Parallel int
	// Timeout bounds each expectation (default 5 s).
	Timeout time.Duration
	// Out receives one line per case and the summary (nil: discarded).
	Out io.Writer
	// ChildStderr receives the children's stderr (nil: kept only for
	// failure reports).
	ChildStderr io.Writer
	// Cases are the cases to run (nil: the built-in ones).
	Cases []*Case
}

// Report is the outcome of a run.
type Report struct {
	Command []string `json:"command"`
	// TestInterface says whether the child serves the test interface
	// (rpc.discover lists Init.echo); without it only protocol cases run.
	TestInterface bool      `json:"testInterface"`
	Methods       []string  `json:"methods"`
	DiscoverError string    `json:"discoverError,omitempty"`
	Passed        int       `json:"passed"`
	Failed        int       `json:"failed"`
	Skipped       int       `json:"skipped"`
	XFailed       int       `json:"xfailed"`
	DurationMs    int64     `json:"durationMs"`
	Results       []*Result `json:"cases"`
}

// OK reports whether no case failed.
func (r *Report) OK() bool { return r.Failed == 0 }

// Summary is the last line printed: "N passed, N failed[, N skipped]".
func (r *Report) Summary() string {
	s := fmt.Sprintf("%d passed, %d failed", r.Passed, r.Failed)
	if r.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", r.Skipped)
	}
	if r.XFailed > 0 {
		s += fmt.Sprintf(", %d xfail", r.XFailed)
	}
	return s
}

// Statuses of a case.
const (
	StatusOK    = "ok"
	StatusFail  = "FAIL"
	StatusSkip  = "skip"
	StatusXFail = "xfail"
)

// Result is the outcome of one case.
type Result struct {
	Name       string  `json:"name"`
	Section    string  `json:"section"`
	Pins       string  `json:"pins"`
	File       string  `json:"file"`
	Needs      string  `json:"needs"`
	Status     string  `json:"status"`
	Reason     string  `json:"reason,omitempty"`
	Step       int     `json:"step,omitempty"`
	StepKind   string  `json:"stepKind,omitempty"`
	Expected   string  `json:"expected,omitempty"`
	Actual     string  `json:"actual,omitempty"`
	KnownBug   string  `json:"knownBug,omitempty"`
	Stderr     string  `json:"stderr,omitempty"`
	DurationMs int64   `json:"durationMs"`
	Transcript []Event `json:"transcript,omitempty"`
}

// Event is one line of a transcript: "->" sent to the child, "<-"
// received from it, ".." a note.
type Event struct {
	AtMs int64  `json:"atMs"`
	Dir  string `json:"dir"`
	Text string `json:"text"`
}

// Run runs the cases of cfg, each against a fresh child, prints one line
// per case and a summary to cfg.Out, and returns the report.
func Run(ctx context.Context, cfg Config) *Report {
	start := time.Now()
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	rep := &Report{Command: cfg.Command}
	cases := cfg.Cases
	if cases == nil {
		var err error
		if cases, err = Cases(); err != nil {
			fmt.Fprintf(out, "FAIL loading cases: %v\n", err)
			rep.Failed++
			return rep
		}
	}
	if cfg.Run != "" {
		re, err := regexp.Compile(cfg.Run)
		if err != nil {
			fmt.Fprintf(out, "FAIL bad -run pattern: %v\n", err)
			rep.Failed++
			return rep
		}
		cases = slices.DeleteFunc(slices.Clone(cases), func(c *Case) bool { return !re.MatchString(c.Name) })
	}

	rep.Methods, rep.DiscoverError = discover(ctx, cfg)
	rep.TestInterface = slices.Contains(rep.Methods, "Init.echo")
	if !rep.TestInterface {
		why := "rpc.discover does not list Init.echo"
		if rep.DiscoverError != "" {
			why = "rpc.discover failed: " + rep.DiscoverError
		}
		fmt.Fprintf(out, "note: the child does not serve the test interface (%s); only protocol cases run\n", why)
	}

	results := make([]*Result, len(cases))
	done := make([]chan struct{}, len(cases))
	for i := range done {
		done[i] = make(chan struct{})
	}
	sem := make(chan struct{}, cfg.Parallel)
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			r := &Result{Name: c.Name, Section: c.Section, Pins: c.Pins, File: c.File, Needs: c.Needs, KnownBug: c.KnownBug}
			results[i] = r
			if c.Needs == LevelTest && !rep.TestInterface {
				r.Status, r.Reason = StatusSkip, "needs the test interface"
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				r.Status, r.Reason = StatusFail, ctx.Err().Error()
				return
			}
			defer func() { <-sem }()
			runCase(ctx, cfg, c, r)
		}()
	}
	for i := range cases {
		<-done[i]
		r := results[i]
		printResult(out, r, cfg.Verbose)
		switch r.Status {
		case StatusOK:
			rep.Passed++
		case StatusSkip:
			rep.Skipped++
		case StatusXFail:
			rep.XFailed++
		default:
			rep.Failed++
		}
	}
	wg.Wait()
	rep.Results = results
	rep.DurationMs = time.Since(start).Milliseconds()
	fmt.Fprintln(out, rep.Summary())
	return rep
}

// discover asks a fresh child for rpc.discover and lists its methods.
func discover(ctx context.Context, cfg Config) ([]string, string) {
	c, err := startChild(cfg.Command, cfg.Env, cfg.Dir, cfg.ChildStderr)
	if err != nil {
		return nil, err.Error()
	}
	defer c.stop(cfg.Timeout)
	req := `{"jsonrpc":"2.0","id":"conformance-discover","method":"rpc.discover"}` + "\n"
	if err := c.write([]byte(req), 0, 0, cfg.Timeout); err != nil {
		return nil, err.Error()
	}
	deadline := time.Now().Add(cfg.Timeout)
	for {
		if ctx.Err() != nil {
			return nil, ctx.Err().Error()
		}
		m, err := c.next(deadline)
		if err != nil {
			return nil, err.Error()
		}
		if m.node == nil {
			continue
		}
		if id := m.member("id"); id == nil || id.str != "conformance-discover" {
			continue
		}
		if e := m.member("error"); e != nil {
			return nil, "error " + e.String()
		}
		var names []string
		if ms := m.node.member("result").member("methods"); ms != nil {
			for _, x := range ms.elems {
				if n := x.member("name"); n != nil && n.kind == '"' {
					names = append(names, n.str)
				}
			}
		}
		if names == nil {
			return nil, "the result has no methods"
		}
		slices.Sort(names)
		return names, ""
	}
}

func (m *message) member(name string) *node { return m.node.member(name) }

// session is one case being run.
type session struct {
	cfg     Config
	c       *child
	res     *Result
	vars    vars
	start   time.Time
	framing string // detected from the first bytes sent
	closed  bool   // the child's output ended
	exited  bool   // its exit status was checked
	step    int
	kind    string
}

// stepError is a failed expectation.
type stepError struct {
	reason   string
	expected string
	actual   string
}

func (e *stepError) Error() string { return e.reason }

func runCase(ctx context.Context, cfg Config, c *Case, r *Result) {
	s := &session{cfg: cfg, res: r, vars: vars{}, start: time.Now()}
	defer func() { r.DurationMs = time.Since(s.start).Milliseconds() }()
	ch, err := startChild(cfg.Command, cfg.Env, cfg.Dir, cfg.ChildStderr)
	if err != nil {
		r.Status, r.Reason = StatusFail, "cannot start the child: "+err.Error()
		return
	}
	s.c = ch
	defer func() {
		ch.stop(cfg.Timeout)
		r.Stderr = ch.stderr.String()
	}()
	stop := context.AfterFunc(ctx, func() { _ = ch.cmd.Process.Kill() })
	defer stop()

	err = nil
	for i, st := range c.Steps {
		s.step, s.kind = i+1, st.kind()
		if err = s.run(st); err != nil {
			break
		}
	}
	if err == nil {
		s.step, s.kind = len(c.Steps)+1, "epilogue"
		err = s.epilogue()
	}
	if err == nil {
		r.Status = StatusOK
		return
	}
	r.Status = StatusFail
	if c.KnownBug != "" {
		r.Status = StatusXFail
	}
	r.Step, r.StepKind = s.step, s.kind
	var se *stepError
	if errors.As(err, &se) {
		r.Reason, r.Expected, r.Actual = se.reason, se.expected, se.actual
	} else {
		r.Reason = err.Error()
	}
}

// printResult writes a case's line, its failure and, if verbose, its
// transcript.
func printResult(w io.Writer, r *Result, verbose bool) {
	line := fmt.Sprintf("%-4s %s", r.Status, r.Name)
	if r.Status == StatusSkip || r.Status == StatusXFail {
		why := r.Reason
		if r.Status == StatusXFail {
			why = "known bug: " + r.KnownBug
		}
		line += " (" + why + ")"
	}
	fmt.Fprintln(w, line)
	if r.Status == StatusFail || (verbose && r.Status == StatusXFail) {
		fmt.Fprintf(w, "     pins: %s\n", r.Pins)
		fmt.Fprintf(w, "     step %d (%s): %s\n", r.Step, r.StepKind, r.Reason)
		if r.Expected != "" || r.Actual != "" {
			printSide(w, "expected:", r.Expected)
			printSide(w, "actual:  ", r.Actual)
		}
		if !verbose && r.Stderr != "" {
			lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
			if len(lines) > 8 {
				lines = lines[len(lines)-8:]
			}
			for _, l := range lines {
				fmt.Fprintf(w, "     stderr| %s\n", shorten(l, 300))
			}
		}
	}
	if verbose && r.Status != StatusSkip {
		for _, e := range r.Transcript {
			fmt.Fprintf(w, "     %5dms %s %s\n", e.AtMs, e.Dir, e.Text)
		}
		if r.Stderr != "" {
			for _, l := range strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n") {
				fmt.Fprintf(w, "     stderr| %s\n", shorten(l, 300))
			}
		}
	}
}

func printSide(w io.Writer, label, text string) {
	for i, l := range strings.Split(shorten(text, 3000), "\n") {
		if i > 0 {
			label = "         "
		}
		fmt.Fprintf(w, "     %s %s\n", label, l)
	}
}
