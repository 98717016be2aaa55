package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// Error codes of the wire contract (docs/PROTOCOL.md, "Errors").
const (
	CodeParseError     = -32700 // the message is not JSON
	CodeInvalidRequest = -32600 // not a valid request, or too large
	CodeMethodNotFound = -32601 // no such method on the target's interface
	CodeInvalidParams  = -32602 // params missing, mistyped, positional or unknown
	CodeInternalError  = -32603 // the method panicked
	CodeApplication    = -32000 // the method returned an error
	CodeNoSuchHandle   = -32001 // $self or a handle argument names no live object
	CodeDisconnected   = -32002 // the object's process exited or disconnected
	CodeLimit          = -32003 // a limit was hit
	CodeAuth           = -32004 // authentication required or refused (sockets)
	CodeCancelled      = -32800 // the call was cancelled
)

// Error is a JSON-RPC error object. Methods may return one to choose the
// code and attach data; any other error is sent as CodeApplication with the
// error's text as the message.
type Error struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Data    jsontext.Value `json:"data,omitzero"`

	cause error // what Unwrap reports: a context error or ErrClosed
}

// Unwrap returns the underlying cause, such as context.Canceled for a
// cancelled call or ErrClosed for a call on a closed connection.
func (e *Error) Unwrap() error { return e.cause }

func (e *Error) Error() string {
	if len(e.Data) > 0 {
		return fmt.Sprintf("%s (code %d, data %s)", e.Message, e.Code, e.Data)
	}
	return fmt.Sprintf("%s (code %d)", e.Message, e.Code)
}

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrNotResponding is what Wait reports for a connection closed because
// its peer answered nothing, not even rpc.ping, for Options.Liveness while
// calls to it were pending.
var ErrNotResponding = errors.New("peer not responding")

// ErrClosed is the cause of calls that fail because their connection is
// closed or closing; they carry CodeDisconnected.
var ErrClosed = errors.New("connection closed")

// ErrorCode maps any error to the wire code it is sent with: the code of an
// *Error in its chain, CodeCancelled for context cancellation and deadlines,
// CodeDisconnected for ErrClosed, and CodeApplication otherwise. A nil error
// has code 0.
func ErrorCode(err error) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CodeCancelled
	case errors.Is(err, ErrClosed):
		return CodeDisconnected
	}
	return CodeApplication
}

// toWire converts an error returned by a method into the error object sent.
func toWire(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if err == error(e) {
			return e
		}
		// Keep the text the wrapping added: "step 3: <message>".
		msg := strings.Replace(err.Error(), e.Error(), e.Message, 1)
		return &Error{Code: e.Code, Message: msg, Data: e.Data}
	}
	code := ErrorCode(err)
	msg := err.Error()
	if code == CodeCancelled {
		msg = "call cancelled: " + msg
	}
	return &Error{Code: code, Message: msg}
}
