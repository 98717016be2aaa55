package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// readTurn reads and routes messages until one is a request this
// goroutine can run itself: it then hands reading over to another
// goroutine and returns the request, so that the common case (one request
// at a time) costs no hand-off between goroutines. It returns nil once the
// input has ended and the connection has drained.
func (c *Conn) readTurn() *serverCall {
	for {
		if c.fw.over() {
			c.waitQueued()
		}
		b, err := c.fr.next()
		if err != nil {
			var fe *frameError
			if errors.As(err, &fe) {
				if fe.answerID != nil {
					// An answer too large to take: fail the call that
					// waits for it rather than leave it waiting.
					c.failPendingWith(fe.answerID, &Error{Code: CodeLimit, Message: fmt.Sprintf("limit reached: the answer from %s exceeds the %d-byte message limit", c.opts.Name, c.opts.MaxMessageSize)})
					continue
				}
				c.badInput(fe.message, fe.input)
				c.reply(appendErrorResponse(nil, nil, &Error{Code: fe.code, Message: fe.message}))
				continue
			}
			close(c.readEnd)
			c.endOfInput(err)
			return nil
		}
		b = bytes.TrimLeft(b, " \t\r\n")
		if len(b) == 0 {
			// An empty LSP body.
			c.badInput("empty message", "")
			c.reply(appendErrorResponse(nil, nil, &Error{Code: CodeParseError, Message: "parse error: empty message"}))
			continue
		}
		if t := c.opts.Trace; t != nil {
			t("in", b)
		}
		msg := bytes.Clone(b)
		if msg[0] == '[' {
			c.handleBatch(msg)
		} else {
			c.handleOne(msg, nil)
		}
		if c.initReleased {
			c.initReleased = false
			c.beginShutdown("init released")
		}
		if sc := c.runHere; sc != nil {
			// Run it here and keep reading afterwards if it is quick; if it
			// is not (or calls the peer, see handOff), another goroutine
			// takes over the reading.
			c.runHere = nil
			sc.handoff = time.AfterFunc(handoffDelay, c.handRead)
			return sc
		}
	}
}

// waitQueued pauses reading while more output is queued than
// Options.MaxQueued allows: the peer is not reading what it asked for, so
// it is not given the chance to ask for more. It returns early if the
// connection has ended, whose closed input then ends the reading.
func (c *Conn) waitQueued() {
	c.peerWarn("peer is not reading its answers: input paused", "queued", c.fw.queued.Load(), "limit", c.opts.MaxQueued)
	for c.fw.over() {
		select {
		case <-c.fw.drained:
		case <-c.done:
			return
		}
	}
}

// reply writes a reply produced by the reader. Writing it from the reader
// keeps it ordered before the replies to anything the peer sent after the
// offending message; a peer that stops reading stalls our reading too,
// which is the backpressure we want.
func (c *Conn) reply(b []byte) {
	if err := c.fw.write(b); err != nil {
		c.writeFailed(err)
	}
}

// workerIdle is how long a request goroutine waits for more work before
// it ends. Reusing goroutines keeps their grown stacks: a fresh goroutine
// per request spends much of its time growing its stack through the JSON
// and reflection code.
const workerIdle = 10 * time.Second

// A job is what a worker goroutine does next: run a call, or take its
// turn as the reader.
type job struct {
	call *serverCall
	read bool
}

// startCall runs sc on an idle worker goroutine, or on a new one.
func (c *Conn) startCall(sc *serverCall) { c.give(job{call: sc}) }

// handRead passes the reader's turn to an idle worker, or a new one.
func (c *Conn) handRead() { c.give(job{read: true}) }

func (c *Conn) give(j job) {
	select {
	case c.work <- j:
	default:
		go c.worker(j)
	}
}

// worker runs jobs until it has been idle for workerIdle or the
// connection has ended. Exactly one worker at a time holds the reader's
// turn.
func (c *Conn) worker(j job) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if j.read {
			if j.call = c.readTurn(); j.call == nil {
				return
			}
		}
		j.call.run()
		if h := j.call.handoff; h != nil && h.Stop() {
			// Quick: no one else took over the reading; go on with it.
			j = job{read: true}
			continue
		}
		if t == nil {
			t = time.NewTimer(workerIdle)
		} else {
			t.Reset(workerIdle) // since Go 1.23 Reset leaves no stale tick behind
		}
		select {
		case j = <-c.work:
		case <-t.C:
			return
		case <-c.done:
			return
		}
	}
}

// handoffDelay is how long the reader runs a request it took before
// another goroutine takes over the reading. Most requests finish sooner,
// and the reader then reads on with no goroutine woken at all; a request
// that calls the peer hands the reading over at once (handOff).
const handoffDelay = 50 * time.Microsecond

// handOff passes the reading on now if sc was taken by the reader and the
// reading has not been passed on yet.
func (sc *serverCall) handOff() {
	if h := sc.handoff; h != nil && h.Stop() {
		sc.conn.handRead()
	}
}
