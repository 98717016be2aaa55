// Package rawecho is the floor the benchmarks measure against: newline
// JSON-RPC with encoding/json and nothing else. Serve answers each request
// with its "value" param, one message at a time. Two clients: Client
// multiplexes calls from many goroutines over one pipe pair (a reader
// goroutine hands each answer to its caller), and LockStep makes one call
// at a time, writing the request and reading the answer on the caller's
// goroutine, with no hand-off at all: the floor of a sequential call.
package rawecho

import (
	"bufio"
	"encoding/json"
	"io"
	"strconv"
	"sync"
)

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  struct {
		Value json.RawMessage `json:"value"`
	} `json:"params"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
}

// Serve echoes requests read from r to w until r ends.
func Serve(r io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriterSize(w, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var req request
			if json.Unmarshal(line, &req) == nil {
				out, _ := json.Marshal(response{JSONRPC: "2.0", ID: req.ID, Result: req.Params.Value})
				bw.Write(append(out, '\n'))
				if br.Buffered() == 0 {
					if err := bw.Flush(); err != nil {
						return err
					}
				}
			}
		}
		if err != nil {
			if err == io.EOF {
				return bw.Flush()
			}
			return err
		}
	}
}

// Client calls a raw echo server; its methods are safe for concurrent use.
type Client struct {
	mu      sync.Mutex // serialises writes
	w       io.Writer
	next    int64
	pmu     sync.Mutex
	pending map[string]chan json.RawMessage
	done    chan struct{}
}

// NewClient starts a client writing to w and reading answers from r; its
// reader goroutine ends when r does.
func NewClient(r io.Reader, w io.Writer) *Client {
	c := &Client{w: w, pending: map[string]chan json.RawMessage{}, done: make(chan struct{})}
	go c.read(bufio.NewReaderSize(r, 64<<10))
	return c
}

func (c *Client) read(br *bufio.Reader) {
	defer close(c.done)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return
		}
		var r response
		if json.Unmarshal(line, &r) != nil {
			continue
		}
		c.pmu.Lock()
		ch := c.pending[string(r.ID)]
		delete(c.pending, string(r.ID))
		c.pmu.Unlock()
		if ch != nil {
			ch <- r.Result
		}
	}
}

// Done is closed when the client's reader has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Call sends value and returns the echo, or nil if the server went away.
func (c *Client) Call(value json.RawMessage) json.RawMessage {
	ch := make(chan json.RawMessage, 1)
	c.mu.Lock()
	c.next++
	id := strconv.FormatInt(c.next, 10)
	c.pmu.Lock()
	c.pending[id] = ch
	c.pmu.Unlock()
	req := request{JSONRPC: "2.0", ID: json.RawMessage(id), Method: "Init.echo"}
	req.Params.Value = value
	out, _ := json.Marshal(req)
	c.w.Write(append(out, '\n'))
	c.mu.Unlock()
	select {
	case v := <-ch:
		return v
	case <-c.done:
		return nil
	}
}

// LockStep calls a raw echo server one call at a time: the calling
// goroutine writes the request and reads the answer itself. It is not safe
// for concurrent use.
type LockStep struct {
	w    io.Writer
	br   *bufio.Reader
	next int64
}

// NewLockStep returns a lock-step client writing to w and reading r.
func NewLockStep(r io.Reader, w io.Writer) *LockStep {
	return &LockStep{w: w, br: bufio.NewReaderSize(r, 64<<10)}
}

// Call sends value and returns the echo, or nil if the server went away or
// answered something else.
func (c *LockStep) Call(value json.RawMessage) json.RawMessage {
	c.next++
	id := strconv.FormatInt(c.next, 10)
	req := request{JSONRPC: "2.0", ID: json.RawMessage(id), Method: "Init.echo"}
	req.Params.Value = value
	out, _ := json.Marshal(req)
	if _, err := c.w.Write(append(out, '\n')); err != nil {
		return nil
	}
	line, err := c.br.ReadBytes('\n')
	if err != nil {
		return nil
	}
	var r response
	if json.Unmarshal(line, &r) != nil || string(r.ID) != id {
		return nil
	}
	return r.Result
}
