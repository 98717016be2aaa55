package bridge

import (
	"context"
	"sync/atomic"

	"github.com/mpbridge/mpbridge/handles"
)

// Remote is a reference to an object the peer exported: a handle id on one
// connection. A Remote received as the result of a call owns one reference,
// which Close gives back (a garbage-collected Remote gives it back too, as a
// safety net). A Remote received as an argument is lent for the call (and
// for the life of the objects the call returns); its Close does nothing.
type Remote struct {
	conn  *Conn
	id    string
	iface string
	st    *remoteState
}

// remoteState is what the cleanup of a collected Remote needs; it must not
// point back to the Remote.
type remoteState struct {
	conn  *Conn
	id    string
	owned atomic.Int32
}

func (s *remoteState) collect() {
	if n := s.owned.Swap(0); n > 0 {
		if f := s.conn.opts.OnLeak; f != nil {
			f(s.id)
		}
		go s.conn.releaseImport(s.id, int(n))
	}
}

// NewRemote returns a Remote for id that owns no reference, for typed
// proxies and tests that name a handle directly.
func NewRemote(c *Conn, id string) *Remote {
	return &Remote{conn: c, id: id, st: &remoteState{conn: c, id: id}}
}

// ID returns the handle id.
func (r *Remote) ID() string { return r.id }

// Conn returns the connection the handle belongs to.
func (r *Remote) Conn() *Conn { return r.conn }

// BridgeRemote implements Proxy.
func (r *Remote) BridgeRemote() *Remote { return r }

// Call calls method ("Interface.method") on the remote object with params
// (a value that encodes as a JSON object, or nil) and decodes the result
// into result (a pointer, or nil to discard it). Interface and func values
// in params are exported; handles in the result become proxies owned by
// the caller. A failed call returns an *Error.
func (r *Remote) Call(ctx context.Context, method string, params, result any) error {
	return r.conn.call(ctx, r.id, method, params, result)
}

// Notify sends method as a notification to the remote object.
func (r *Remote) Notify(ctx context.Context, method string, params any) error {
	return r.conn.notify(ctx, r.id, method, params)
}

// Close gives back the references this Remote owns. Closing the peer's
// bootstrap object releases "init", which shuts the peer down in order.
// Close is idempotent.
func (r *Remote) Close() error { return r.CloseContext(context.Background()) }

// CloseContext is Close whose wait to write the release ends with ctx (a
// peer that stops reading can otherwise hold it up).
func (r *Remote) CloseContext(ctx context.Context) error {
	n := r.st.owned.Swap(0)
	if n <= 0 {
		return nil
	}
	if r.id == handles.Bootstrap {
		return r.conn.notify(ctx, "", "release", map[string]string{"handle": handles.Bootstrap})
	}
	if msg := r.conn.releaseMsg(r.id, int(n)); msg != nil {
		if err := r.conn.fw.writeCtx(ctx, msg); err != nil && ctx.Err() != nil {
			return cancelled(ctx.Err())
		}
	}
	return nil
}

// Release closes v if it is a proxy (anything holding a *Remote) and does
// nothing otherwise, so code can release what it was given without knowing
// whether it is local or remote.
func Release(v any) error {
	if p, ok := v.(Proxy); ok {
		return p.BridgeRemote().Close()
	}
	return nil
}
