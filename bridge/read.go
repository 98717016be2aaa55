package bridge

import (
	"bytes"
	"context"
	"errors"
	"time"
)

// msgReader is what the reading role reads: whole messages, one at a time.
// frameReader (framing.go) is the one in use; any other drops in here.
type msgReader interface {
	// Recv returns the next message, valid until the next call; a
	// *FrameError for a message that was skipped; io.EOF at the end of
	// input, or another read error.
	Recv() ([]byte, error)
	// lastInput is when input last arrived, for the liveness check.
	lastInput() time.Time
	// more reports whether a whole message is probably waiting to be
	// read without blocking (a hint: the holder of the role may then
	// cork its answers, see frameWriter.writeLazy).
	more() bool
	// SetReadDeadline interrupts a Recv at t (see Stream.SetReadDeadline),
	// or fails if the input cannot be interrupted.
	SetReadDeadline(t time.Time) error
}

func (s *Stream) lastInput() time.Time { return time.Unix(0, s.lastRead.Load()) }

// The reading role.
//
// One goroutine at a time reads: it holds the role. The role is a token,
// Conn.st.reading, that moves only under Conn.mu, or from one holder to
// the goroutine it hands it to (handRead, which passes it held), so there
// is never more than one reader. Holders are workers (readTurn) and
// callers that read their own answer (readFor). The token moves:
//
//   - free to held: takeRole, by a caller about to wait for its answer
//     (it reads itself, or hands the role to a worker), by a worker that
//     finished its call and would otherwise idle, or by lingerEnd;
//   - held to held: handRead, when a request the holder runs itself calls
//     the peer or outlasts handoffDelay, or when a caller gives the role up
//     while other calls wait;
//   - held to free: freeRole, when the holder has delivered the last
//     answer anyone waits for. A free role is taken back by lingerEnd
//     after lingerDelay, unless a call takes it sooner: a caller making one
//     call after another then reads its own answers, with no goroutine
//     woken in between.
//
// Invariant (checked by checkRole in tests): while any call waits for an
// answer the role is held, and a free role always has the linger timer
// armed, so that the input is never left unread for longer than
// lingerDelay. Once the input has ended the role stays held by no one.

// lingerDelay is how long the role stays free after the last answer was
// delivered before a worker takes it back. While calls follow each other
// the timer fires about once per lingerDelay and finds the role held; a
// longer delay arms it less often, and bounds how long a message the peer
// sends just after a call waits to be read.
const lingerDelay = 250 * time.Microsecond

// takeRole takes the reading role if it is free. It leaves the linger
// timer alone: stopping and re-arming it for every call would cost more
// than the call's own wake-ups (arming a timer that is due first wakes a
// thread of the runtime's poller), so the timer, once armed, fires and
// finds the role held (lingerEnd).
func (c *Conn) takeRole() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.reading {
		return false
	}
	c.st.reading, c.st.lingering = true, false
	return true
}

// freeRole gives up the role held by the caller. If calls still wait for
// answers, a worker takes it over at once; otherwise it is left free for
// lingerDelay. It reports whether the role was left free.
func (c *Conn) freeRole() bool {
	c.mu.Lock()
	if len(c.st.pending) > c.st.pings {
		c.mu.Unlock()
		c.handRead()
		return false
	}
	c.leaveRoleLocked()
	c.mu.Unlock()
	return true
}

// leaveRoleLocked leaves the role free, with the linger timer due at most
// lingerDelay from now. c.mu is held.
func (c *Conn) leaveRoleLocked() {
	c.st.reading, c.st.lingering = false, true
	c.st.freedAt = time.Now()
	if !c.st.lingerArmed {
		c.st.lingerArmed = true
		c.st.linger.Reset(lingerDelay)
	}
}

// lingerEnd gives a role that has been free for lingerDelay to a worker.
// A role held now, or freed again since the timer was armed, is left
// alone (the timer is armed again for the rest of the delay).
func (c *Conn) lingerEnd() {
	c.mu.Lock()
	c.st.lingerArmed = false
	if c.st.reading {
		c.mu.Unlock()
		return
	}
	if rest := lingerDelay - time.Since(c.st.freedAt); rest > 0 {
		c.st.lingerArmed = true
		c.st.linger.Reset(rest)
		c.mu.Unlock()
		return
	}
	c.st.reading, c.st.lingering = true, false
	c.mu.Unlock()
	c.handRead()
}

// checkRole reports a broken invariant of the reading role (tests).
func (c *Conn) checkRole() error {
	if c.roleBroken.Load() {
		return errors.New("two goroutines read at once")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.st.reading && (!c.st.lingering || !c.st.lingerArmed) {
		return errors.New("the reading role is free and no one will take it")
	}
	return nil
}

// ensureReader makes sure someone reads for a caller that waits without
// reading: if the role is free, a worker takes it now.
func (c *Conn) ensureReader() {
	if c.takeRole() {
		c.handRead()
	}
}

// readMsg reads and handles one message as the holder of the role. It
// returns a request the holder may run itself, or end, the error that
// ended the input (readEnd is then closed, and the holder must call
// endOfInput).
func (c *Conn) readMsg() (run *serverCall, end error) {
	if c.readers.Add(1) != 1 {
		c.roleBroken.Store(true)
	}
	defer c.readers.Add(-1)
	if c.fw.over() {
		c.waitQueued()
	}
	b, err := c.fr.Recv()
	if err != nil {
		var fe *FrameError
		if errors.As(err, &fe) {
			c.frameFault(fe)
			return nil, nil
		}
		if isTimeout(err) && c.interruptible {
			// A caller reading for its answer was interrupted (readFor):
			// nothing was lost, the next Recv goes on where this stopped.
			return nil, nil
		}
		close(c.readEnd)
		return nil, err
	}
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		// An empty LSP body.
		c.badInput("empty message", "")
		c.reply(appendErrorResponse(nil, nil, &Error{Code: CodeParseError, Message: "parse error: empty message"}))
		return nil, nil
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
	run, c.runHere = c.runHere, nil
	return run, nil
}

// readTurn reads and routes messages as a worker holding the role until
// one is a request this goroutine can run itself: it returns it, watched
// so that the role is handed on if it runs long (runOnReader). The
// common case, one request at a time, then costs no hand-off between
// goroutines. It returns nil when it gave the role up (freeRole) or once the input has
// ended and the connection has drained.
func (c *Conn) readTurn() *serverCall {
	for {
		sc, end := c.readMsg()
		if end != nil {
			c.endOfInput(end)
			return nil
		}
		if sc != nil {
			// Run it here and keep reading afterwards if it is quick; if it
			// is not (or calls the peer, see handOff), another goroutine
			// takes over the reading.
			c.runOnReader(sc)
			return sc
		}
		if c.delivered {
			// An answer went to its caller. If no one else waits, leave
			// the role free for a moment: the caller's next call can
			// then read its own answer.
			c.delivered = false
			c.stalled()
			if c.freeRoleIfIdle() {
				return nil
			}
		}
	}
}

// freeRoleIfIdle frees the role held by a worker if no call waits for an
// answer.
func (c *Conn) freeRoleIfIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.st.pending) > c.st.pings || c.st.inputEnded {
		return false
	}
	c.leaveRoleLocked()
	return true
}

// uncork writes the answers the holder of the role corked (writeLazy).
func (c *Conn) uncork() {
	if err := c.fw.flush(c.ctx); err != nil {
		c.writeFailed(err)
	}
}

// stalled is called by the holder of the role before it may wait for
// input (Stream.stall) or gives the role up: answers still corked are
// written by a goroutine of their own, not by the holder, whose write
// could wait on a peer that is itself waiting for us to read. It is
// rare: the answer to the last request of a burst is written at once
// (complete), taking the corked ones along. The flusher ends when
// nothing is corked.
func (c *Conn) stalled() {
	if !c.fw.needsFlush() || !c.flushing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			c.uncork()
			c.flushing.Store(false)
			if !c.fw.needsFlush() || !c.flushing.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// readFor reads as a caller holding the role until p's answer has come,
// and returns it. Requests it reads go to workers. It returns nil, no
// longer holding the role, if ctx ended, or once the input has ended: the
// caller then waits like any other.
//
// If ctx can end and the input can be interrupted (c.interruptible), the
// end of ctx pushes the read deadline to the past: the read returns at
// once, keeping what it had read of a message, and the deadline is
// cleared before the role passes on. Otherwise ctx must be one that ends
// only through something this goroutine reads itself (see call).
func (c *Conn) readFor(ctx context.Context, p *pendingCall) *message {
	var stop func() bool
	var fired chan struct{}
	if ctx.Done() != nil && c.interruptible {
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			defer close(fired)
			_ = c.fr.SetReadDeadline(time.Unix(1, 0))
		})
	}
	var m *message
	hold := true
	defer func() {
		// The deadline is cleared before the role passes on: no other
		// reader may find it set.
		if stop != nil && !stop() {
			<-fired
			_ = c.fr.SetReadDeadline(time.Time{})
		}
		if hold {
			c.delivered = false
			c.freeRole()
		}
	}()
	for {
		select {
		case m = <-p.ch:
			c.selfRead.Add(1)
			return m
		default:
		}
		if ctx.Err() != nil || stop != nil && c.fw.over() {
			// (A peer that does not read its answers pauses the reading,
			// which a caller whose context can end leaves to a worker.)
			return nil
		}
		sc, end := c.readMsg()
		if end != nil {
			// The drain waits for running calls, perhaps this one: let it
			// run elsewhere.
			hold = false
			go c.endOfInput(end)
			return nil
		}
		if sc != nil {
			// Not run here: the caller's own code is on this stack and
			// may hold what the request needs (a lock, say).
			c.startCall(sc)
		}
	}
}

// waitQueued pauses reading while more output is queued than
// Options.MaxQueued allows: the peer is not reading what it asked for, so
// it is not given the chance to ask for more. It returns early if the
// connection has ended, whose closed input then ends the reading.
func (c *Conn) waitQueued() {
	c.stalled()
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
// connection has ended. A worker given a read job holds the reading role.
func (c *Conn) worker(j job) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if j.read {
			j.call = c.readTurn()
		}
		if j.call != nil {
			j.call.run()
			c.current.CompareAndSwap(j.call, nil)
			if j.call.byReader && (j.call.reads || j.call.keep()) {
				// Quick: no one else took over the reading; go on with it.
				j = job{read: true}
				continue
			}
			if c.takeRole() {
				// The role is free: read on rather than idle.
				j = job{read: true}
				continue
			}
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

// handOff passes the reading on now if sc is run by the holder of the
// role and the role has not been passed on yet.
func (sc *serverCall) handOff() {
	if sc.keep() {
		sc.conn.handRead()
	}
}

// keep reports whether the goroutine running sc still holds the reading
// role, and makes sure the watchdog will not pass it on: it is the
// caller's to keep or to pass on from now.
func (sc *serverCall) keep() bool { return sc.onReader.CompareAndSwap(true, false) }

// runOnReader marks sc as run by the holder of the role. If sc is still
// running handoffDelay from now, the watchdog passes the role to a worker
// (watchFire). The watchdog's timer is armed only when it is not armed
// already: arming a timer due before all others wakes a thread of the
// runtime's poller, which would cost more than a quick request.
func (c *Conn) runOnReader(sc *serverCall) {
	sc.byReader = true
	sc.started = time.Now()
	sc.onReader.Store(true)
	c.current.Store(sc)
	if c.watchArmed.CompareAndSwap(false, true) {
		c.watch.Reset(handoffDelay)
	}
}

// watchFire passes the role on if the request the holder runs has run for
// handoffDelay; if it has run for less, it arms itself for the rest.
func (c *Conn) watchFire() {
	c.watchArmed.Store(false)
	sc := c.current.Load()
	if sc == nil || !sc.onReader.Load() {
		return
	}
	if rest := handoffDelay - time.Since(sc.started); rest > 0 {
		if c.watchArmed.CompareAndSwap(false, true) {
			c.watch.Reset(rest)
		}
		return
	}
	if sc.keep() {
		c.handRead()
	}
}
