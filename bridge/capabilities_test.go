package bridge_test

// Capabilities: nothing reaches an object by an id it was not given.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
)

// longRun returns the duration of the long runs asked for with
// MPBRIDGE_SOAK (e.g. MPBRIDGE_SOAK=60s), or 0.
func longRun() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("MPBRIDGE_SOAK"))
	return d
}

// TestIDsNeverReused is H6: 100000 objects created and released on one
// connection (in batches) get 100000 distinct ids; none is ever handed out
// again, each Close runs once, and the table ends empty.
func TestIDsNeverReused(t *testing.T) {
	total := 100000
	if raceEnabled && longRun() == 0 {
		total = 20000 // about 2 s under -race; the full count with MPBRIDGE_SOAK
	}
	const per = 1000
	p := newPeer(t, nil)
	seen := make(map[string]bool, total)
	var b strings.Builder
	for round := 0; round < total/per; round++ {
		b.Reset()
		b.WriteByte('[')
		for i := range per {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"Init.newCounter"}`, i)
		}
		b.WriteString("]\n")
		p.send(b.String())
		var replies []struct {
			Result struct {
				Handle string `json:"$handle"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(p.recv()), &replies); err != nil || len(replies) != per {
			t.Fatalf("round %d: %d replies, %v", round, len(replies), err)
		}
		b.Reset()
		for _, r := range replies {
			id := r.Result.Handle
			if !strings.HasPrefix(id, "s") || seen[id] {
				t.Fatalf("round %d: id %q reused or malformed", round, id)
			}
			seen[id] = true
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"release","params":{"handle":%q}}`+"\n", id)
		}
		p.send(b.String())
	}
	p.checkServing()
	eventually(t, "every object closed", func() bool { return p.svc.Closed.Load() == int64(total) })
	if ex, im := p.server.Handles(); len(ex) != 1 || len(im) != 0 {
		t.Errorf("after releasing everything: exports %d, imports %d", len(ex), len(im))
	}
	if len(seen) != total {
		t.Errorf("%d distinct ids for %d objects", len(seen), total)
	}
}

// guesses returns ids a peer might try instead of the live id h
// ("s<seq>.<16 hex>"): its neighbours in sequence and in suffix, mangled
// forms, and ids that were never minted.
func guesses(h string) []string {
	seq, suffix, _ := strings.Cut(h[1:], ".")
	n, _ := strconv.Atoi(seq)
	last := suffix[len(suffix)-1]
	next := byte('0')
	if last == '0' {
		next = '1'
	}
	return []string{
		fmt.Sprintf("s%d.%s", n-1, suffix),
		fmt.Sprintf("s%d.%s", n+1, suffix),
		fmt.Sprintf("s%d", n),
		fmt.Sprintf("s%d.", n),
		h[:len(h)-1],
		h[:len(h)-1] + string(next),
		h + "0",
		h + " ",
		" " + h,
		strings.ToUpper(h),
		"S" + h[1:],
		"c" + h[1:],
		"s0", "s-1", "s1", "s", "", "init2", "Init", "INIT", "init ",
		"c1", "c0",
		"s" + strings.Repeat("9", 40),
		"s1." + strings.Repeat("f", 1<<16),
		strings.Repeat("s", 1<<20),
	}
}

// TestGuessedIDs is S4: a peer cannot reach an object by guessing: every
// id near a live one, or never minted, names nothing, as $self and as a
// handle argument (-32001), and a release of it changes nothing (no
// object closed, the live one still works with its count intact).
func TestGuessedIDs(t *testing.T) {
	p := newPeer(t, nil)
	p.send(`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n")
	m := p.recvJSON()
	h := m["result"].(map[string]any)["$handle"].(string)
	p.send(`{"jsonrpc":"2.0","id":2,"method":"Counter.add","params":{"$self":"` + h + `","n":5}}` + "\n")
	if m := p.recvJSON(); fmt.Sprint(m["result"]) != "5" {
		t.Fatalf("live counter: %v", m)
	}
	before, _ := p.server.Handles()
	for i, g := range guesses(h) {
		q, _ := json.Marshal(g)
		p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Counter.value","params":{"$self":%s}}`+"\n", 100+i, q))
		wantError(t, fmt.Sprintf("$self %.40q", g), p.recvJSON(), bridge.CodeNoSuchHandle, strconv.Itoa(100+i))
		if strings.HasPrefix(g, "s") {
			// As an argument only ids with our prefix name our objects;
			// any other id is the peer's own export (a callback).
			p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.read","params":{"counter":{"$handle":%s}}}`+"\n", 200+i, q))
			wantError(t, fmt.Sprintf("argument %.40q", g), p.recvJSON(), bridge.CodeNoSuchHandle, strconv.Itoa(200+i))
		}
		p.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"release","params":{"handle":%s,"count":1}}`+"\n", q))
	}
	p.checkServing()
	after, im := p.server.Handles()
	if fmt.Sprint(before) != fmt.Sprint(after) || len(im) != 0 {
		t.Errorf("guessed releases changed the table:\nbefore %v\nafter  %v\nimports %v", before, after, im)
	}
	if n := p.svc.Closed.Load(); n != 0 {
		t.Errorf("guessed releases closed %d objects", n)
	}
	p.send(`{"jsonrpc":"2.0","id":3,"method":"Counter.value","params":{"$self":"` + h + `"}}` + "\n")
	if m := p.recvJSON(); fmt.Sprint(m["result"]) != "5" {
		t.Fatalf("live counter after the guesses: %v", m)
	}
}

// TestGuessedIDsAtTheDialer is S4 from the other side: the endpoint
// without a bootstrap object (a parent, a dialer) serves only the objects
// it exported: init, its own c-ids never handed out, and s-ids are -32001.
func TestGuessedIDsAtTheDialer(t *testing.T) {
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	client := bridge.New(s2cR, c2sW, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet})
	defer client.Close()
	lines := make(chan string, 16)
	go func() {
		br := bufio.NewReader(c2sR)
		for {
			l, err := br.ReadString('\n')
			if l != "" {
				lines <- l
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	for i, self := range []string{"init", "c1", "c0", "c1.0000000000000000", "s1", "c" + strings.Repeat("1", 1000)} {
		fmt.Fprintf(s2cW, `{"jsonrpc":"2.0","id":%d,"method":"Callback.call","params":{"$self":%q,"i":0}}`+"\n", i, self)
		select {
		case l := <-lines:
			wantError(t, "$self "+self[:min(len(self), 20)], decodeLine(t, l), bridge.CodeNoSuchHandle, strconv.Itoa(i))
		case <-time.After(testTimeout):
			t.Fatal("no reply from the dialer")
		}
	}
	s2cW.Close()
}
