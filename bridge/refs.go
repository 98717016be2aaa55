package bridge

import (
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/handles"
)

// pinOwn adds a temporary reference to each live export of ours named in
// v, so that it stays live until unpin; it returns the pinned ids.
func (c *Conn) pinOwn(v jsontext.Value) []string {
	if v == nil || !mayHaveHandles(v) {
		return nil
	}
	var pins []string
	_ = walkHandles(v, func(id string) {
		if c.ownID(id) && id != handles.Bootstrap && c.table.AddRef(id) {
			pins = append(pins, id)
		}
	})
	return pins
}

// unpin gives back the references taken by pinOwn.
func (c *Conn) unpin(pins []string) {
	for _, id := range pins {
		if d, ok, _ := c.table.Release(id, 1); ok {
			c.dispose(d)
		}
	}
}

// releaseValueHandles gives back every reference that v carries, for
// values that no one will decode.
func (c *Conn) releaseValueHandles(v jsontext.Value) {
	occ := map[string]int{}
	_ = walkHandles(v, func(id string) {
		if !c.ownID(id) {
			c.table.Import(id)
			occ[id]++
		}
	})
	c.releaseMessageHandles(occ)
}

// ownID reports whether id names one of our exports (as opposed to one of
// the peer's). "init" is ours if we serve a bootstrap object.
func (c *Conn) ownID(id string) bool {
	if id == handles.Bootstrap {
		return c.opts.Bootstrap != nil
	}
	return strings.HasPrefix(id, c.self)
}

// dispose closes a dropped object and gives back what it kept, outside
// every lock and off the reader goroutine.
func (c *Conn) dispose(d handles.Dropped) {
	if len(d.Keep) == 0 && !hasClose(d.Obj) {
		return // nothing to run
	}
	go c.disposeNow(d)
}

// disposeInOrder closes an object the peer released, on the notification
// queue: the reader goes on reading (a Close that calls the peer can have
// its answer), but notifications and requests that the peer sent after the
// release wait until the Close has run, as a release takes effect before
// anything its sender sent after it (contract §3). The Close counts as
// running for the drain.
func (c *Conn) disposeInOrder(d handles.Dropped) {
	if len(d.Keep) == 0 && !hasClose(d.Obj) {
		return // nothing to run
	}
	c.update(func(s *state) { s.nrun++ })
	c.nq.push(queued{run: func() {
		defer c.update(func(s *state) { s.nrun-- })
		c.disposeNow(d)
	}})
}

func hasClose(o any) bool {
	switch o.(type) {
	case interface{ Close() error }, interface{ Close() }:
		return true
	}
	return false
}

func (c *Conn) disposeNow(d handles.Dropped) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("Close panicked", "handle", d.ID, "panic", r)
		}
	}()
	closeObject(d.Obj)
	for _, k := range d.Keep {
		if b, ok := k.(*keepBundle); ok {
			b.drop()
		}
	}
}

func closeObject(o any) {
	switch v := o.(type) {
	case interface{ Close() error }:
		_ = v.Close()
	case interface{ Close() }:
		v.Close()
	}
}

// releaseMessageHandles gives back references received in one message.
func (c *Conn) releaseMessageHandles(occ map[string]int) {
	for id, n := range occ {
		c.releaseImport(id, n)
	}
}

// releaseImport gives back n references to the peer's id.
func (c *Conn) releaseImport(id string, n int) {
	if msg := c.releaseMsg(id, n); msg != nil {
		_ = c.fw.write(msg)
	}
}

// releaseMsg gives back up to n references to the peer's id in the import
// table and returns the release message to send, or nil.
func (c *Conn) releaseMsg(id string, n int) []byte {
	n = c.table.Unimport(id, n)
	if n <= 0 || c.isFinished() {
		return nil
	}
	b := make([]byte, 0, 96)
	b = append(b, `{"jsonrpc":"2.0","method":"release","params":{"handle":`...)
	b, _ = jsontext.AppendQuote(b, id)
	if n != 1 {
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return append(b, "}}"...)
}
