package node

import (
	"context"
	"errors"

	"github.com/mpbridge/mpbridge/bridge"
)

// Gone reports whether err, returned by a subscriber's callback, says the
// subscriber will never answer again: its connection closed (JSON-RPC code
// -32002), or the object is no longer there (-32001). A subscriber that
// returned an error of its own is not gone.
//
// This is the one place where the package looks at how a callback failed
// in another process; it only reads the error's code.
func Gone(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch bridge.ErrorCode(err) {
	case bridge.CodeDisconnected, bridge.CodeNoSuchHandle:
		return true
	}
	return false
}

// PeerName names the process v lives in, for log lines: the peer's name
// on the connection v is a proxy on (such as "mpwallet[4242]" or "client
// on unix:PATH"), or "in-process".
func PeerName(v any) string {
	if p, ok := v.(bridge.Proxy); ok {
		if c := p.BridgeRemote().Conn(); c != nil {
			return c.Name()
		}
	}
	return "in-process"
}
