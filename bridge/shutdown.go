package bridge

import (
	"errors"
	"io"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// writeFailed notes that the output is broken. The connection goes on
// reading: the peer may still answer our calls (a child that was told to
// shut down answers what it was asked before it exits) and its end of
// input finishes the connection in the usual way.
func (c *Conn) writeFailed(err error) {
	first := false
	c.update(func(s *state) { first, s.outputBroken = !s.outputBroken, true })
	if first {
		c.log.Debug("output broken", "peer", c.opts.Name, "error", err)
	}
}

// endOfInput starts the orderly shutdown after the reader stops.
func (c *Conn) endOfInput(err error) {
	var fail *Error
	if c.opts.PeerError != nil {
		fail = c.opts.PeerError()
	}
	if fail == nil {
		msg := c.opts.Name + " closed the connection"
		if !errors.Is(err, io.EOF) {
			msg = "connection to " + c.opts.Name + " lost: " + err.Error()
		}
		fail = &Error{Code: CodeDisconnected, Message: msg}
	}
	c.update(func(s *state) {
		if s.failErr == nil {
			s.failErr = fail
		}
		s.inputEnded = true
		s.phase = max(s.phase, phaseStopping)
	})
	// The peer can no longer answer: fail our calls now.
	c.failAllPending(fail)
	var end error
	if !errors.Is(err, io.EOF) {
		end = err
	}
	c.drain(end, fail)
}

// beginShutdown stops serving new input (release of init) and drains.
func (c *Conn) beginShutdown(reason string) {
	started := false
	c.update(func(s *state) {
		if s.phase < phaseDraining {
			s.phase, started = phaseDraining, true
		}
	})
	if !started {
		return
	}
	go c.drain(nil, &Error{Code: CodeDisconnected, Message: "connection to " + c.opts.Name + " shut down: " + reason})
}

// drain waits for running calls (bounded by DrainTimeout), answers the rest
// with CodeCancelled, then finishes the connection.
func (c *Conn) drain(end error, fail *Error) {
	c.update(func(s *state) { s.phase = max(s.phase, phaseDraining) })
	idle := c.idle
	t := time.NewTimer(c.opts.DrainTimeout)
	defer t.Stop()
	select {
	case <-idle:
		// Answers the reader corked go out before the streams close,
		// unless the peer does not read them within the drain limit.
		flushed := make(chan struct{})
		go func() {
			defer close(flushed)
			c.uncork()
		}()
		select {
		case <-flushed:
		case <-t.C:
		}
	case <-c.done:
		return
	case <-t.C:
		c.cancelRunning()
		// Give cancelled calls a moment to answer themselves.
		select {
		case <-idle:
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.finish(end, fail)
}

// cancelRunning cancels every running request and answers it.
func (c *Conn) cancelRunning() {
	c.mu.Lock()
	var ins []*incoming
	for _, in := range c.st.inflight {
		ins = append(ins, in)
	}
	c.mu.Unlock()
	for _, in := range ins {
		in.cancelled.Store(true)
		// Claim the answer before cancelling, so the reply says why.
		answer := in.batch == nil && in.answered.CompareAndSwap(false, true)
		in.cancel()
		if answer {
			_ = c.fw.write(appendErrorResponse(nil, in.id, Errorf(CodeCancelled, "call cancelled: shutdown drain limit of %s reached", c.opts.DrainTimeout)))
		}
	}
}

func (c *Conn) failAllPending(e *Error) {
	c.mu.Lock()
	ps := c.st.pending
	c.st.pending = make(map[string]*pendingCall)
	c.st.pings = 0
	c.mu.Unlock()
	for id, p := range ps {
		p.ch <- &message{id: jsontext.Value(id), hasError: true, err: e}
	}
}

// finish ends the connection; it runs once.
func (c *Conn) finish(end error, fail *Error) {
	c.closeOnce.Do(func() {
		c.update(func(s *state) {
			s.phase = phaseFinished
			s.endErr = end
			if s.failErr == nil {
				s.failErr = fail
			}
			fail = s.failErr
			if s.live != nil {
				s.live.Stop()
			}
		})
		c.fw.shut.Store(true)
		c.cancel()
		c.failAllPending(fail)
		// Objects are closed newest first, then the streams.
		for _, d := range c.table.DropAll() {
			c.disposeNow(d)
		}
		if c.wc != nil {
			_ = c.wc.Close()
		}
		if c.rc != nil {
			_ = c.rc.Close()
		}
		close(c.done)
	})
}
