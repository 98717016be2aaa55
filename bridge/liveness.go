package bridge

import (
	"fmt"
	"strconv"
	"time"
)

// livenessTick is how often the liveness check runs, and how long a peer
// with calls pending may be quiet before it is pinged.
func livenessTick(d time.Duration) time.Duration { return max(d/3, time.Millisecond) }

// checkLiveness runs every livenessTick while the connection lives. While
// calls to the peer are pending it pings a quiet peer, and closes the
// connection if the peer has sent nothing at all for Options.Liveness.
func (c *Conn) checkLiveness() {
	tick := livenessTick(c.opts.Liveness)
	c.mu.Lock()
	if c.st.finished() {
		c.mu.Unlock()
		return
	}
	waiting := len(c.st.pending) - c.st.pings
	pinging := c.st.pings > 0
	from := c.st.quietFrom
	c.mu.Unlock()
	if waiting > 0 {
		if last := c.fr.lastInput(); last.After(from) {
			from = last
		}
		switch quiet := time.Since(from); {
		case quiet >= c.opts.Liveness:
			c.notResponding()
			return
		case quiet >= tick && !pinging:
			c.ping()
		}
	}
	c.mu.Lock()
	if !c.st.finished() {
		c.st.live.Reset(tick)
	}
	c.mu.Unlock()
}

// ping sends rpc.ping; its answer, like any input, shows the peer alive.
func (c *Conn) ping() {
	c.mu.Lock()
	if c.st.finished() || c.st.inputEnded {
		c.mu.Unlock()
		return
	}
	c.st.nextID++
	id := c.st.nextID
	c.st.pending[strconv.FormatInt(id, 10)] = &pendingCall{ch: make(chan *message, 1), ping: true}
	c.st.pings++
	c.mu.Unlock()
	b := strconv.AppendInt([]byte(`{"jsonrpc":"2.0","id":`), id, 10)
	b = append(b, `,"method":"rpc.ping"}`...)
	// A peer that stopped reading must not hold the timer's goroutine.
	go func() {
		if err := c.fw.writeCtx(c.ctx, b); err != nil && c.ctx.Err() == nil {
			c.writeFailed(err)
		}
	}()
}

// notResponding fails the pending calls of a peer that has answered
// nothing for Options.Liveness and closes the connection.
func (c *Conn) notResponding() {
	e := &Error{Code: CodeDisconnected, Message: fmt.Sprintf("%s not responding for %s", c.opts.Name, c.opts.Liveness)}
	c.log.Warn("peer not responding: closing the connection", "peer", c.opts.Name, "silent", c.opts.Liveness)
	c.finish(ErrNotResponding, e)
}
