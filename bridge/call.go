package bridge

import (
	"context"
	"strconv"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/handles"
)

type pendingCall struct {
	ch   chan *message
	ping bool // a liveness probe: no caller waits for it
}

// request builds a request or notification message.
func (c *Conn) request(self, method string, id int64, params any) ([]byte, error) {
	if n, ok := params.(Named); ok {
		return c.requestNamed(self, method, id, n)
	}
	raw, _, err := c.marshalValue(params)
	if err != nil {
		return nil, err
	}
	if params != nil && string(raw) != "null" && (len(raw) == 0 || raw[0] != '{') {
		return nil, Errorf(CodeInvalidParams, "invalid params: params must encode as a JSON object, not %s", raw[:1])
	}
	b := requestHead(make([]byte, 0, len(raw)+len(method)+len(self)+64), method, id)
	hasParams := params != nil && string(raw) != "null"
	switch {
	case self != "" && self != handles.Bootstrap:
		b = append(b, `,"params":{"$self":`...)
		b, _ = jsontext.AppendQuote(b, self)
		if hasParams && string(raw) != "{}" {
			b = append(b, ',')
			b = append(b, raw[1:]...)
		} else {
			b = append(b, '}')
		}
	case hasParams:
		b = append(b, `,"params":`...)
		b = append(b, raw...)
	}
	return append(b, '}'), nil
}

// requestHead appends a request up to its method name.
func requestHead(b []byte, method string, id int64) []byte {
	b = append(b, `{"jsonrpc":"2.0",`...)
	if id >= 0 {
		b = append(b, `"id":`...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, ',')
	}
	b = append(b, `"method":`...)
	b, _ = jsontext.AppendQuote(b, method)
	return b
}

// requestNamed is request for Named params, written straight into the
// message.
func (c *Conn) requestNamed(self, method string, id int64, n Named) ([]byte, error) {
	b := requestHead(make([]byte, 0, len(method)+len(self)+16*len(n)+64), method, id)
	b = append(b, `,"params":{`...)
	if self != "" && self != handles.Bootstrap {
		b = append(b, `"$self":`...)
		b, _ = jsontext.AppendQuote(b, self)
		if len(n) > 0 {
			b = append(b, ',')
		}
	}
	b, err := c.appendNamed(b, n)
	if err != nil {
		return nil, err
	}
	return append(b, "}}"...), nil
}

func (c *Conn) notify(ctx context.Context, self, method string, params any) error {
	if err := c.usable(self); err != nil {
		return err
	}
	b, err := c.request(self, method, -1, params)
	if err != nil {
		return err
	}
	if err := c.fw.writeCtx(ctx, b); err != nil {
		if ctx.Err() != nil {
			return cancelled(ctx.Err())
		}
		return c.closedErr()
	}
	return nil
}

// usable fails fast, without I/O, on a finished connection or a released
// handle.
func (c *Conn) usable(self string) error {
	c.mu.Lock()
	fin := c.st.finished()
	c.mu.Unlock()
	if fin {
		return c.closedErr()
	}
	if self != "" && self != handles.Bootstrap && !c.ownID(self) && c.table.Imported(self) == 0 {
		return Errorf(CodeNoSuchHandle, "handle %q was released", self)
	}
	return nil
}

func (c *Conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.st.failErr
	if e == nil {
		e = &Error{Code: CodeDisconnected, Message: "connection to " + c.opts.Name + " closed"}
	}
	return &Error{Code: e.Code, Message: e.Message, Data: e.Data, cause: ErrClosed}
}

func (c *Conn) call(ctx context.Context, self, method string, params, result any) error {
	if err := ctx.Err(); err != nil {
		return cancelled(err)
	}
	if err := c.usable(self); err != nil {
		return err
	}
	c.mu.Lock()
	if c.st.finished() || c.st.inputEnded {
		c.mu.Unlock()
		return c.closedErr()
	}
	c.st.nextID++
	id := c.st.nextID
	key := strconv.FormatInt(id, 10)
	p := c.pendingCalls.Get().(*pendingCall)
	if len(c.st.pending) == c.st.pings {
		// The peer's silence counts from now (see checkLiveness).
		c.st.quietFrom = time.Now()
	}
	c.st.pending[key] = p
	c.mu.Unlock()

	b, err := c.request(self, method, id, params)
	if err != nil {
		c.mu.Lock()
		delete(c.st.pending, key)
		c.mu.Unlock()
		return err
	}
	if werr := c.fw.writeCtx(ctx, b); werr != nil {
		if ctx.Err() != nil {
			// Not written, or queued or finishing in the background:
			// either way the caller is gone. A late answer is dropped
			// quietly, and a cancel follows the request in case it goes
			// out (a cancel of an id the peer does not know is ignored).
			c.mu.Lock()
			delete(c.st.pending, key)
			c.st.cancelled[key] = struct{}{}
			c.mu.Unlock()
			c.sendCancel(id)
			return cancelled(ctx.Err())
		}
		c.writeFailed(werr)
		// The peer is most likely gone: give the reader a moment to see
		// its end of input, so the error says how it ended.
		t := time.NewTimer(writeFailWait)
		defer t.Stop()
		select {
		case m := <-p.ch:
			if m.hasError && m.err.Code == CodeDisconnected {
				return c.finishCall(m, result)
			}
			c.unpin(m.pins)
		case <-t.C:
		case <-ctx.Done():
		}
		c.mu.Lock()
		delete(c.st.pending, key)
		c.mu.Unlock()
		return c.closedErr()
	}
	// While any call of ours waits, requests from the peer do not wait
	// behind a running notification, whatever context the call carries:
	// the answer may depend on them.
	c.nq.enter()
	defer c.nq.exit()
	// The caller reads its own answer if it can hold the reading role
	// and still stop when its context ends: no goroutine is then woken to
	// hand the answer over. That is any context if the input can be
	// interrupted (a pipe or socket: see readFor); otherwise a context
	// that never ends, or the context of a request that the holder of the
	// role is running itself (its own reading stops with the input, and
	// it reads the peer's cancel itself).
	sc, _ := ctx.Value(callKey{}).(*serverCall)
	reading := false
	switch {
	case sc != nil && sc.conn == c && sc.byReader && (c.interruptible || ctx.Done() == sc.ctx.Done()):
		// (A handler forwarding to another connection is not reading this
		// one: it hands its own connection's role on, below.)
		reading = sc.keep()
	case ctx.Done() == nil || c.interruptible:
		reading = c.takeRole()
	}
	if reading {
		if m := c.readFor(ctx, p); m != nil {
			c.pendingCalls.Put(p)
			return c.finishCall(m, result)
		}
	} else if sc != nil {
		// A handler that the reader took waits here: the reading must go
		// on, or the answer would never be read. (With any other context
		// the reader's timer hands the reading on; this is only sooner.)
		sc.handOff()
	}
	c.ensureReader()
	select {
	case m := <-p.ch:
		c.pendingCalls.Put(p)
		return c.finishCall(m, result)
	case <-ctx.Done():
		c.mu.Lock()
		_, still := c.st.pending[key]
		delete(c.st.pending, key)
		c.mu.Unlock()
		if !still {
			// The answer raced the cancellation; take it.
			m := <-p.ch
			c.pendingCalls.Put(p)
			return c.finishCall(m, result)
		}
		c.mu.Lock()
		if len(c.st.cancelled) >= maxAbandoned {
			clear(c.st.cancelled)
		}
		c.st.cancelled[key] = struct{}{}
		c.mu.Unlock()
		c.sendCancel(id)
		return cancelled(ctx.Err())
	}
}

// sendCancel tells the peer that our call id was abandoned. The cancel is
// written by a goroutine of its own, which ends with the write or the
// connection: the caller returns now even if the writer is held up by a
// peer that does not read.
func (c *Conn) sendCancel(id int64) {
	go func() { _ = c.notify(c.ctx, "", "cancel", map[string]int64{"id": id}) }()
}

// writeFailWait bounds how long a call whose request could not be written
// waits for the reader to report how the peer ended.
const writeFailWait = 2 * time.Second

// maxAbandoned bounds the ids of cancelled calls remembered so that their
// late answers are dropped quietly.
const maxAbandoned = 4096

func cancelled(err error) error {
	return &Error{Code: CodeCancelled, Message: "call cancelled: " + err.Error(), cause: err}
}

// finishCall turns a response into the call's outcome.
func (c *Conn) finishCall(m *message, result any) error {
	defer c.unpin(m.pins)
	if m.hasError {
		if m.hasResult {
			return &Error{Code: CodeInternalError, Message: "malformed response from " + c.opts.Name}
		}
		e := m.err
		if e.Code == CodeDisconnected && e.Message != "" {
			return &Error{Code: e.Code, Message: e.Message, Data: e.Data, cause: ErrClosed}
		}
		return e
	}
	occ, herr := c.importHandles(m.result)
	if herr != nil {
		c.releaseMessageHandles(occ)
		return herr
	}
	if result == nil {
		c.releaseMessageHandles(occ)
		return nil
	}
	var err error
	if len(occ) > 0 || len(m.pins) > 0 || mayHaveHandles(m.result) {
		pool := make(map[string]int, len(occ)+1)
		for k, v := range occ {
			pool[k] = v
		}
		err = c.unmarshal(m.result, result, true, pool)
		c.releaseMessageHandles(pool)
	} else {
		// No handles: decoded leniently like any result, without the
		// pool a result with handles needs.
		err = json.Unmarshal(m.result, result, lenientResult)
	}
	if err != nil {
		if e, ok := err.(*Error); ok {
			return e
		}
		return Errorf(CodeInternalError, "cannot decode the result of the call: %s", decodeErrorText(err, m.result))
	}
	return nil
}
