package spawn

// The soak test (ISSUE 7, docs/RELIABILITY.md): a bounded run that mixes
// calls, callbacks, handle create and release, cancellations and child
// kill/respawn against real child processes, and then checks that nothing
// was lost or left behind.
//
//	go test ./spawn -run TestSoak                    # CI: 5000 calls or 5 s
//	go test ./spawn -run TestSoak -soak=60s -v       # local: 60 s or 200000 calls
//	MPBRIDGE_SOAK=60s go test ./spawn -run TestSoak -v

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"go.uber.org/goleak"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/handles"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

var soakFlag = flag.Duration("soak", 0, "run TestSoak (and the long fault rounds) for this long, with up to 200000 calls; MPBRIDGE_SOAK does the same")

// soakDuration returns the long-run duration asked for with -soak or
// MPBRIDGE_SOAK, or 0 for the short default run.
func soakDuration() time.Duration {
	if *soakFlag > 0 {
		return *soakFlag
	}
	d, _ := time.ParseDuration(os.Getenv("MPBRIDGE_SOAK"))
	return d
}

// soakChild is one generation of the child under load.
type soakChild struct {
	c      *Child
	in     testsvc.Init
	gen    int
	killed atomic.Bool // set just before SIGKILL
}

type soakRun struct {
	t        *testing.T
	cur      atomic.Pointer[soakChild]
	stop     atomic.Bool
	calls    atomic.Int64 // bridge calls made, callbacks included
	started  atomic.Int64 // operations started
	finished atomic.Int64 // operations that returned
	mu       sync.Mutex
	codes    map[string]int // outcome -> count
	children []*soakChild
}

func (s *soakRun) count(what string) {
	s.mu.Lock()
	s.codes[what]++
	s.mu.Unlock()
}

// ok classifies the outcome of one call on ch: success, -32002 if ch was
// killed, -32800 if the operation cancelled it; anything else fails the
// test. It reports whether the call succeeded.
func (s *soakRun) ok(ch *soakChild, what string, err error, mayCancel bool) bool {
	s.calls.Add(1)
	code := bridge.ErrorCode(err)
	switch {
	case err == nil:
		s.count("ok")
		return true
	case code == bridge.CodeDisconnected && ch.killed.Load():
		s.count("-32002 (child killed)")
	case code == bridge.CodeCancelled && mayCancel:
		s.count("-32800 (cancelled)")
	default:
		s.t.Errorf("gen %d: %s: unexpected %v (code %d)", ch.gen, what, err, code)
		s.count(fmt.Sprintf("%d (unexpected)", code))
	}
	return false
}

// op runs one random operation on the current child.
func (s *soakRun) op(rng *rand.Rand) {
	ch := s.cur.Load()
	s.started.Add(1)
	defer s.finished.Add(1)
	ctx := context.Background()
	in := ch.in
	switch rng.IntN(10) {
	case 0, 1:
		a, b := rng.Int64N(1e12), rng.Int64N(1e12)
		n, err := in.Add(ctx, a, b)
		if s.ok(ch, "add", err, false) && n != a+b {
			s.t.Errorf("add(%d, %d) = %d", a, b, n)
		}
	case 2:
		v := jsontext.Value(fmt.Sprintf(`{"i":%d,"s":%q,"a":[1,2.5,null,true]}`, rng.Int64(), strings.Repeat("x", rng.IntN(512))))
		got, err := in.Echo(ctx, v)
		if s.ok(ch, "echo", err, false) && string(got) != string(v) {
			s.t.Errorf("echo changed %s into %s", v, got)
		}
	case 3:
		n := 1 + rng.IntN(4)
		var seen []int
		var mu sync.Mutex
		k, err := in.Repeat(ctx, func(_ context.Context, i int) error {
			s.calls.Add(1)
			mu.Lock()
			seen = append(seen, i)
			mu.Unlock()
			return nil
		}, n)
		if s.ok(ch, "repeat", err, false) {
			mu.Lock()
			if k != n || len(seen) != n || seen[0] != 0 || seen[n-1] != n-1 {
				s.t.Errorf("repeat(%d) = %d with callbacks %v", n, k, seen)
			}
			mu.Unlock()
		}
	case 4:
		c, err := in.NewCounter(ctx)
		if !s.ok(ch, "newCounter", err, false) {
			return
		}
		defer callbacks.Release(c)
		if _, err := c.Add(ctx, 4); !s.ok(ch, "Counter.add", err, false) {
			return
		}
		n, err := in.Read(ctx, c) // our proxy goes back to its exporter
		if s.ok(ch, "read", err, false) && n != 4 {
			s.t.Errorf("read = %d, want 4", n)
		}
	case 5:
		var last atomic.Int64
		sub, err := in.Subscribe(ctx, func(_ context.Context, v int) error {
			s.calls.Add(1)
			last.Store(int64(v))
			return nil
		})
		if !s.ok(ch, "subscribe", err, false) {
			return
		}
		defer callbacks.Release(sub)
		for i := int64(1); i <= 2; i++ {
			if _, err := sub.Add(ctx, 1); !s.ok(ch, "subscription add", err, false) {
				return
			}
			if last.Load() != i {
				s.t.Errorf("subscription callback saw %d, want %d", last.Load(), i)
			}
		}
	case 6:
		// Cancelled by a deadline while running in the child.
		cctx, cancel := context.WithTimeout(ctx, time.Duration(1+rng.IntN(5))*time.Millisecond)
		err := in.Sleep(cctx, 10000)
		cancel()
		if s.ok(ch, "sleep with a deadline", err, true) {
			s.t.Errorf("a 10 s sleep with a deadline of a few ms succeeded")
		}
	case 7:
		// Cancelled from inside a callback, in the middle of the loop.
		cctx, cancel := context.WithCancel(ctx)
		stopAt := 1 + rng.IntN(3)
		var n atomic.Int64
		_, err := in.Repeat(cctx, func(context.Context, int) error {
			s.calls.Add(1)
			if n.Add(1) == int64(stopAt) {
				cancel()
			}
			return nil
		}, 1<<20)
		cancel()
		if s.ok(ch, "repeat cancelled from its callback", err, true) {
			s.t.Errorf("a repeat of 2^20 callbacks cancelled after %d succeeded", stopAt)
		}
	case 8:
		// An already cancelled context: nothing is sent.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := in.Ping(cctx); bridge.ErrorCode(err) != bridge.CodeCancelled {
			s.t.Errorf("call with a cancelled context: %v, want -32800", err)
		}
		s.count("-32800 (cancelled)")
		s.calls.Add(1)
	case 9:
		p, err := in.Ping(ctx)
		if s.ok(ch, "ping", err, false) && p != "pong" {
			s.t.Errorf("ping = %q", p)
		}
	}
}

// spawnSoakChild starts generation gen.
func (s *soakRun) spawnSoakChild(gen int) (*soakChild, error) {
	e := append(os.Environ(), childEnv+"=serve", raceEnv())
	c, err := Spawn(testExe(s.t), &Options{Name: fmt.Sprintf("soak%d", gen), Env: e, Stderr: &syncBuffer{}}, &bridge.Options{Logger: quietLog})
	if err != nil {
		return nil, err
	}
	in, err := callbacks.Import[testsvc.Init](c.Init())
	if err != nil {
		return nil, err
	}
	ch := &soakChild{c: c, in: in, gen: gen}
	s.mu.Lock()
	s.children = append(s.children, ch)
	s.mu.Unlock()
	return ch, nil
}

// vmHWM returns the peak resident set of a process in KiB, from /proc.
func vmHWM(pid string) int {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb int
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kb); err == nil {
			return kb
		}
	}
	return 0
}

// TestSoak mixes calls, callbacks, handle create/release, cancellations
// (deadlines, and a cancel from inside a callback) and SIGKILL of the
// child followed by a fresh one, from 8 goroutines, until a count or a
// time bound. Afterwards: every operation returned, every call ended with
// a correct result, -32800 (cancelled by us) or -32002 (its child was
// killed); the surviving child and the parent hold no handle but init; no
// goroutine is left behind.
func TestSoak(t *testing.T) {
	dur, maxCalls, killEvery := 5*time.Second, int64(5000), time.Duration(0)
	if d := soakDuration(); d > 0 {
		dur, maxCalls, killEvery = d, 200000, max(2*time.Second, d/12)
	}
	leaks := goleak.IgnoreCurrent()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d; bounds: %v or %d calls", seed, dur, maxCalls)
	s := &soakRun{t: t, codes: map[string]int{}}
	first, err := s.spawnSoakChild(0)
	if err != nil {
		t.Fatal(err)
	}
	s.cur.Store(first)

	start := time.Now()
	var peakG atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		rng := rand.New(rand.NewPCG(seed, uint64(w+1)))
		wg.Go(func() {
			for !s.stop.Load() {
				s.op(rng)
				if g := int64(runtime.NumGoroutine()); g > peakG.Load() {
					peakG.Store(g)
				}
			}
		})
	}
	// The killer: one kill in the short run (at 40% of the calls); in the
	// long run one every killEvery or every 5% of the calls, whichever
	// comes first.
	kills := 0
	var killErr error
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		last, lastCalls := time.Now(), int64(0)
		for gen := 1; !s.stop.Load(); {
			time.Sleep(5 * time.Millisecond)
			due := killEvery > 0 && (time.Since(last) >= killEvery || s.calls.Load()-lastCalls >= maxCalls/20)
			if killEvery == 0 && kills == 0 && (s.calls.Load() >= maxCalls*4/10 || time.Since(start) >= dur*4/10) {
				due = true
			}
			if !due {
				continue
			}
			old := s.cur.Load()
			next, err := s.spawnSoakChild(gen)
			if err != nil {
				killErr = err
				return
			}
			gen++
			s.cur.Store(next) // new operations go to the new child
			old.killed.Store(true)
			old.c.Process().Kill()
			kills++
			last, lastCalls = time.Now(), s.calls.Load()
		}
	}()
	for s.calls.Load() < maxCalls && time.Since(start) < dur && !t.Failed() {
		time.Sleep(5 * time.Millisecond)
	}
	s.stop.Store(true)
	elapsed := time.Since(start)
	done := make(chan struct{})
	go func() { wg.Wait(); <-killed; close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		buf := make([]byte, 1<<20)
		t.Fatalf("operations still running %v after the end of the soak (%d started, %d returned):\n%s",
			timeout, s.started.Load(), s.finished.Load(), buf[:runtime.Stack(buf, true)])
	}
	if killErr != nil {
		t.Fatalf("respawn: %v", killErr)
	}
	if s.started.Load() != s.finished.Load() {
		t.Errorf("%d operations started, %d returned", s.started.Load(), s.finished.Load())
	}

	// The survivor holds exactly init, and the parent holds nothing for it.
	last := s.cur.Load()
	deadline := time.Now().Add(timeout)
	for {
		var h struct {
			Exports []handles.ExportInfo `json:"exports"`
			Imports []handles.ImportInfo `json:"imports"`
		}
		if err := last.c.Call(ctxT(t), "rpc.handles", nil, &h); err != nil {
			t.Fatalf("rpc.handles: %v", err)
		}
		ex, im := last.c.Conn().Handles()
		clean := len(h.Exports) == 1 && h.Exports[0].Handle == "init" && len(h.Imports) == 0 && len(ex) == 0 && len(im) == 0
		if clean {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after the soak: child exports %v imports %v; parent exports %v imports %v", h.Exports, h.Imports, ex, im)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	childHWM := vmHWM(fmt.Sprint(last.c.Process().Pid()))
	for _, ch := range s.children {
		err := closeWithin(t, ch.c, timeout)
		var xe *ExitError
		switch {
		case ch.killed.Load():
			if !errors.As(err, &xe) || xe.Signal != syscall.SIGKILL {
				t.Errorf("gen %d (killed): Close = %v", ch.gen, err)
			}
		case err != nil:
			t.Errorf("gen %d: Close = %v, want exit 0", ch.gen, err)
		}
		if ex, im := ch.c.Conn().Handles(); len(ex) != 0 || len(im) != 0 {
			t.Errorf("gen %d after Close: exports %v imports %v", ch.gen, ex, im)
		}
	}
	goleak.VerifyNone(t, leaks)

	var outcomes []string
	for k, v := range s.codes {
		outcomes = append(outcomes, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(outcomes)
	t.Logf("%v: %d operations, %d calls (%.0f calls/s), %d kills; outcomes {%s}; peak goroutines %d; peak RSS parent %d MiB, last child %d MiB",
		elapsed.Round(time.Millisecond), s.finished.Load(), s.calls.Load(), float64(s.calls.Load())/elapsed.Seconds(), kills,
		strings.Join(outcomes, ", "), peakG.Load(), vmHWM("self")/1024, childHWM/1024)
}
