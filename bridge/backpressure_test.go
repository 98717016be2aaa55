package bridge_test

// Backpressure: a peer that stops reading stalls the reader instead of
// growing memory (docs/RELIABILITY.md).

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
)

// goroutineSampler records the highest goroutine count seen while it runs.
// It ticks on the real clock, so start it outside a synctest bubble: there
// it samples while the bubble's goroutines run, where a sampler inside the
// bubble would tick only when they all wait.
type goroutineSampler struct {
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func sampleGoroutines() *goroutineSampler {
	s := &goroutineSampler{stop: make(chan struct{}), done: make(chan struct{})}
	s.max.Store(int64(runtime.NumGoroutine()))
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if n := int64(runtime.NumGoroutine()); n > s.max.Load() {
					s.max.Store(n)
				}
			}
		}
	}()
	return s
}

func (s *goroutineSampler) Stop() int {
	close(s.stop)
	<-s.done
	return int(s.max.Load())
}

// stableGoroutines waits until the goroutine count has not changed for a
// while of real time and returns it. Outside a bubble, where
// settledGoroutines cannot be used.
func stableGoroutines(t testing.TB) int {
	t.Helper()
	last, since := runtime.NumGoroutine(), time.Now()
	deadline := time.Now().Add(testTimeout)
	for time.Since(since) < 200*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("goroutine count never settled (now %d)", last)
		}
		time.Sleep(10 * time.Millisecond)
		if n := runtime.NumGoroutine(); n != last {
			last, since = n, time.Now()
		}
	}
	return last
}

// settledGoroutines, in a synctest bubble, settles it and returns the
// number of goroutines in the process. Goroutines outside the bubble (the
// sampler; idle workers of earlier tests, which only end) count too, so it
// is an upper bound of the bubble's.
func settledGoroutines() int {
	settle()
	return runtime.NumGoroutine()
}

// pipelined returns n ping requests, ids 0..n-1, as one string.
func pipelined(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"Init.ping"}`+"\n", i)
	}
	return b.String()
}

// TestBackpressureStalledReader is P8 in process: a peer sends 10000
// requests and reads nothing. The server stops reading (the peer's writes
// block) instead of queueing: its goroutines stay within MaxInFlight plus
// a few. When the peer reads again every request gets exactly one reply,
// a result or -32003, and the peer's writes complete. In a synctest
// bubble: the stall is the bubble settled, not a goroutine count that
// stood still for a while of real time.
func TestBackpressureStalledReader(t *testing.T) {
	const n = 10000
	for _, limit := range []int{64, bridge.DefaultMaxInFlight} {
		t.Run(fmt.Sprintf("MaxInFlight=%d", limit), func(t *testing.T) {
			sampler := sampleGoroutines()
			synctest.Test(t, func(t *testing.T) {
				base := settledGoroutines()
				p := newPeer(t, &bridge.Options{MaxInFlight: limit})
				written := make(chan error, 1)
				go func() {
					_, err := io.WriteString(p.in, pipelined(n))
					written <- err
				}()
				stalled := settledGoroutines()
				select {
				case err := <-written:
					t.Fatalf("all %d requests were read (%v) although no reply was: the server buffers without bound", n, err)
				default:
				}
				bound := base + limit + 32
				if stalled > bound {
					t.Errorf("%d goroutines while stalled (%d before), want at most MaxInFlight + 32 = %d", stalled, base, bound)
				}
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				t.Logf("stalled: %d goroutines (%d before), heap in use %.1f MiB", stalled, base, float64(ms.HeapInuse)/(1<<20))

				// Read again: every id exactly once.
				seen := make([]bool, n)
				refused := 0
				for range n {
					m := p.recvJSON()
					id, err := strconv.Atoi(fmt.Sprint(m["id"]))
					if err != nil || id < 0 || id >= n {
						t.Fatalf("reply with unexpected id: %v", m)
					}
					if seen[id] {
						t.Fatalf("id %d answered twice", id)
					}
					seen[id] = true
					switch {
					case m["result"] == "pong":
					case errCode(m) == bridge.CodeLimit:
						refused++
					default:
						t.Fatalf("reply %v, want pong or -32003", m)
					}
				}
				select {
				case err := <-written:
					if err != nil {
						t.Fatalf("write: %v", err)
					}
				case <-time.After(testTimeout):
					t.Fatal("the peer's writes did not complete once it read again")
				}
				if max := sampler.Stop(); max > bound {
					t.Errorf("goroutines peaked at %d, want at most %d", max, bound)
				} else {
					t.Logf("goroutines peaked at %d; %d of %d requests refused with -32003", max, refused, n)
				}
				p.checkServing()
			})
		})
	}
}

// TestBackpressureCloseWhileStalled: Close on a connection stalled by a
// peer that does not read returns at once, fails the writer, and leaves
// no goroutine behind. In a synctest bubble: "at once" is without the
// fake clock moving, and the goroutines are counted once the bubble has
// settled.
func TestBackpressureCloseWhileStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := settledGoroutines()
		p := newPeer(t, &bridge.Options{MaxInFlight: 256})
		written := make(chan error, 1)
		go func() {
			_, err := io.WriteString(p.in, pipelined(10000))
			written <- err
		}()
		settle()
		start := time.Now()
		closed := make(chan struct{})
		go func() { p.server.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(2 * time.Second):
			t.Fatal("Close of a stalled connection did not return within 2 s")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close of a stalled connection returned after %v of fake time; want at once", d)
		}
		select {
		case err := <-written:
			if err == nil {
				t.Error("the peer's write succeeded after Close")
			}
		case <-time.After(testTimeout):
			t.Fatal("the peer's write still blocks after Close")
		}
		p.outR.Close()
		if n := settledGoroutines(); n > base+2 {
			t.Errorf("%d goroutines after Close (%d before), want at most %d", n, base, base+2)
		}
	})
}
