package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"

	"github.com/mpbridge/mpbridge/bridge"
)

// gateWriter is an io.Writer whose first Write waits for open, and which
// counts its Writes.
type gateWriter struct {
	w      io.Writer
	open   chan struct{}
	mu     sync.Mutex
	writes int
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	g.writes++
	first := g.writes == 1
	g.mu.Unlock()
	if first {
		<-g.open
	}
	return g.w.Write(p)
}

// Writers that find the write lock held queue their messages, and the
// holder writes them all in its next write (a group commit): 32
// notifications sent at once while the first write is held up leave in
// two writes, every one whole and none lost.
func TestWritesQueuedBehindHolderLeaveTogether(t *testing.T) {
	inR, _ := io.Pipe()
	outR, outW := io.Pipe()
	g := &gateWriter{w: outW, open: make(chan struct{})}
	c := bridge.New(inR, g, &bridge.Options{Logger: quiet})
	defer c.Close()
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- c.Notify(context.Background(), "Init.note", map[string]int{"i": i}) })
	}
	// One notification holds the lock (its write waits at the gate); the
	// others queue behind it.
	eventually(t, "31 notifications queued behind the first", func() bool { return bridge.QueuedWrites(c) == n-1 })
	got := make(chan map[int]bool, 1)
	go func() {
		seen := map[int]bool{}
		br := bufio.NewReader(outR)
		for len(seen) < n {
			l, err := br.ReadString('\n')
			if err != nil {
				break
			}
			var m struct {
				Method string         `json:"method"`
				Params map[string]int `json:"params"`
			}
			if json.Unmarshal([]byte(l), &m) != nil || m.Method != "Init.note" {
				t.Errorf("garbled message %q", l)
				break
			}
			seen[m.Params["i"]] = true
		}
		got <- seen
	}()
	close(g.open)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen := <-got; len(seen) != n {
		t.Fatalf("%d of %d notifications arrived", len(seen), n)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.writes != 2 {
		t.Errorf("%d writes for %d messages, want 2: the holder's own, then the queue behind it", g.writes, n)
	}
}
