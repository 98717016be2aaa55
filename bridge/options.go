package bridge

import (
	"context"
	"log/slog"
	"reflect"
	"time"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxMessageSize = 16 << 20
	DefaultDrainTimeout   = 10 * time.Second
	DefaultMaxInFlight    = 4096
	DefaultMaxBatch       = 4096
	DefaultMaxHandles     = 1 << 20
	DefaultMaxQueued      = 64 << 20
	DefaultLiveness       = 30 * time.Second
)

// Options configure a Conn. A nil *Options means all defaults.
type Options struct {
	// Bootstrap is the object served under the id "init" (an Object, or a
	// value the Adapter can export as InitInterface). A connection with a
	// bootstrap object mints handle ids starting with "s", one without
	// mints ids starting with "c".
	Bootstrap any
	// InitInterface names the bootstrap object's interface; default "Init".
	InitInterface string
	// Adapter turns Go values into exported objects and handles into typed
	// proxies. Without one only Objects and *Remote cross the connection.
	Adapter Adapter
	// Framing is the framing to write before the peer has sent anything;
	// the default, FramingAuto, writes lines and then follows the peer.
	Framing Framing
	// MaxMessageSize is the largest message accepted (default 16 MiB).
	MaxMessageSize int
	// DrainTimeout bounds how long shutdown waits for running calls before
	// cancelling them (default 10 s).
	DrainTimeout time.Duration
	// MaxInFlight bounds the requests served at once (default 4096); more
	// are answered with CodeLimit.
	MaxInFlight int
	// MaxBatch bounds the members of one batch (default 4096).
	MaxBatch int
	// MaxHandles bounds the live exports (default 1<<20).
	MaxHandles int
	// MaxQueued bounds the output waiting to be written, in bytes
	// (default 64 MiB): past it the connection stops reading the peer's
	// input until the peer reads again, so a peer that never reads cannot
	// grow memory without bound.
	MaxQueued int
	// Liveness is how long a peer may stay silent while calls to it are
	// pending (default 30 s; negative turns the check off). A quiet peer
	// is sent rpc.ping first; one that answers nothing at all for
	// Liveness fails the pending calls with CodeDisconnected, and the
	// connection is closed; Wait then reports ErrNotResponding.
	Liveness time.Duration
	// Name describes the peer in errors, e.g. "mpwallet[4242]".
	Name string
	// PeerError, if set, is called when the input ends unexpectedly and
	// returns what to tell pending callers (for a child process: its exit
	// status and last stderr lines). It may block briefly.
	PeerError func() *Error
	// Logger receives diagnostics (dropped strays, bad releases). Default:
	// a text logger on os.Stderr.
	Logger *slog.Logger
	// Discover, if set, returns the OpenRPC methods served, for rpc.discover.
	Discover func() []any
	// Cookie is the secret a peer proves it knows with rpc.auth (a socket's
	// cookie file). An rpc.auth with another cookie is answered CodeAuth
	// and the connection is closed. Without a Cookie, rpc.auth is answered
	// true (there is nothing to prove).
	Cookie string
	// RequireAuth serves nothing but rpc.auth and rpc.ping until the peer
	// has authenticated: other requests are answered CodeAuth and not run,
	// other notifications are dropped. It needs a Cookie.
	RequireAuth bool
	// Trace, if set, is called with every message read ("in") and every
	// message written ("out"), in the order they crossed the stream. msg is
	// valid only during the call. It must be quick: it runs on the reading
	// and writing paths.
	Trace func(dir string, msg []byte)
	// OnLeak, if set, is called with the handle id when a proxy that still
	// owned a reference is garbage collected (its reference is then given
	// back). Tests use it to fail on proxies that were never released.
	OnLeak func(handle string)
}

// An Object is an exported object: it serves the calls addressed to its
// handle. Method names arrive without the interface prefix.
//
// The contract of Call: it runs on a goroutine of the connection, with no
// lock held, concurrently with other calls (one at a time for a Serial
// object; notifications one at a time, in order). ctx ends when the peer
// cancels the request, when the connection ends, or when a shutdown's
// drain limit is reached. Call may call the peer back, to any depth, with
// ctx, a context derived from it, or any other: the connection goes on
// reading, and the peer's requests are served while the call waits,
// whatever context it carries. Only a call made with ctx (or a context
// derived from it) is cancelled with the request.
type Object interface {
	// Interface names the object's interface, e.g. "Wallet".
	Interface() string
	// Call serves method with params and returns the result or an error
	// (an *Error to choose the wire code).
	Call(ctx context.Context, method string, params *Params) (result any, err error)
}

// Serial is implemented by Objects whose calls must run one at a time, in
// arrival order.
type Serial interface {
	Serial() bool
}

// Unwrapper is implemented by Objects that wrap a Go value; a handle sent
// back to its exporter decodes as that value.
type Unwrapper interface {
	Unwrap() any
}

// An Adapter converts between Go values and handles for one type system.
// The callbacks package provides the usual one.
type Adapter interface {
	// Export returns the Object serving v, whose static type is t (an
	// interface or func type), and an identity key (nil if none).
	Export(t reflect.Type, v reflect.Value) (obj Object, key any, ok bool)
	// Import returns a value of type t standing for r, or ok=false if t
	// does not hold handles.
	Import(t reflect.Type, r *Remote) (v reflect.Value, ok bool)
}

// Proxy is implemented by values that stand for a remote object.
type Proxy interface {
	BridgeRemote() *Remote
}
