package bridge

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// A Channel carries whole messages, one per Recv and per Send. It knows
// nothing of JSON-RPC: it only delimits messages.
//
// Recv returns the next message, valid until the next call to Recv. A
// message the channel had to skip is reported as a *FrameError; Recv can
// then be called again and goes on with the next message. io.EOF means the
// input ended in order; any other error ends the input, except a timeout
// of a read deadline (see Stream.SetReadDeadline), after which Recv may be
// called again and continues where it stopped. Recv must not be called
// concurrently with itself.
//
// Send writes one message; it may be called concurrently with Recv and
// with itself, and must not keep msg after it returns. Close closes both
// directions and makes a Recv that waits return; it is safe to call twice.
type Channel interface {
	Recv() ([]byte, error)
	Send(msg []byte) error
	Close() error
}

// FrameKind says why a Channel skipped a message.
type FrameKind int

const (
	// FrameSyntax is input that is not a well-formed JSON value (line
	// framing) or a message cut short by the end of input.
	FrameSyntax FrameKind = iota + 1
	// FrameTooLarge is a message over the channel's size limit; it was
	// skipped without being kept.
	FrameTooLarge
	// FrameHeader is a malformed LSP header block, a bare line where an
	// LSP header belongs, or an LSP header in a line-framed stream.
	FrameHeader
)

func (k FrameKind) String() string {
	switch k {
	case FrameSyntax:
		return "syntax"
	case FrameTooLarge:
		return "too large"
	case FrameHeader:
		return "header"
	}
	return fmt.Sprintf("FrameKind(%d)", int(k))
}

// A FrameError reports a message that a Channel skipped. Recv can be
// called again after it.
type FrameError struct {
	Kind FrameKind
	// Msg says what was wrong, e.g. "invalid character ',' at start of
	// value" or "message exceeds the 16777216-byte limit".
	Msg string
	// Input is the start of the offending input, for logs (may be empty).
	Input string
	// ID is the top-level "id" member of a message skipped as too large,
	// raw, when it could be read from the message as it went by (nil if
	// not, or if it was longer than 256 bytes).
	ID jsontext.Value
	// Answer reports that the message skipped as too large is a response:
	// an object with "result" or "error" and without "method".
	Answer bool
}

func (e *FrameError) Error() string { return "framing: " + e.Kind.String() + ": " + e.Msg }

// maxDepth bounds the nesting of arrays and objects accepted; it is the
// JSON decoder's own bound.
const maxDepth = 10000

// maxHeader bounds the size of one LSP header block.
const maxHeader = 8 << 10

func tooLargeError(max int, k *skimmer) *FrameError {
	e := &FrameError{Kind: FrameTooLarge, Msg: fmt.Sprintf("message exceeds the %d-byte limit", max)}
	if k.complete() && k.idDone {
		e.ID = jsontext.Value(k.id)
		e.Answer = k.answer && !k.method
	}
	return e
}

// chanReader is the msgReader of a connection over a Channel (NewChannel):
// it notes when messages arrive, for the liveness check, and skips those
// over the connection's size limit as a Stream would.
type chanReader struct {
	ch   Channel
	max  int
	last atomic.Int64 // UnixNano of the last Recv that returned input
}

func (r *chanReader) Recv() ([]byte, error) {
	m, err := r.ch.Recv()
	var fe *FrameError
	if err == nil || errors.As(err, &fe) {
		r.last.Store(time.Now().UnixNano())
	}
	if err == nil && len(m) > r.max {
		var k skimmer
		k.feed(m)
		return nil, tooLargeError(r.max, &k)
	}
	return m, err
}

func (r *chanReader) lastInput() time.Time { return time.Unix(0, r.last.Load()) }

// Pipe returns the two ends of an in-memory message channel: what one end
// sends the other receives, one whole message at a time, in order. Send
// never blocks (messages queue); a message over maxMessage bytes (0: no
// limit) is received as a *FrameError of kind FrameTooLarge, carrying its
// id like a Stream's. Closing either end ends both: the other end receives
// what was already sent, then io.EOF.
func Pipe(maxMessage int) (Channel, Channel) {
	shared := &pipeState{}
	shared.cond = sync.NewCond(&shared.mu)
	a := &pipeEnd{st: shared, max: maxMessage}
	b := &pipeEnd{st: shared, max: maxMessage}
	a.peer, b.peer = b, a
	return a, b
}

type pipeState struct {
	mu     sync.Mutex
	cond   *sync.Cond
	closed bool
}

type pipeEnd struct {
	st    *pipeState
	peer  *pipeEnd
	max   int
	queue [][]byte // messages sent to this end, under st.mu
}

// ErrPipeClosed is returned by Send on a closed Pipe.
var ErrPipeClosed = errors.New("bridge: send on a closed pipe")

func (p *pipeEnd) Send(msg []byte) error {
	st := p.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return ErrPipeClosed
	}
	p.peer.queue = append(p.peer.queue, append([]byte(nil), msg...))
	st.cond.Broadcast()
	return nil
}

func (p *pipeEnd) Recv() ([]byte, error) {
	st := p.st
	st.mu.Lock()
	for len(p.queue) == 0 && !st.closed {
		st.cond.Wait()
	}
	if len(p.queue) == 0 {
		st.mu.Unlock()
		return nil, io.EOF
	}
	m := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	st.mu.Unlock()
	if p.max > 0 && len(m) > p.max {
		var k skimmer
		k.feed(m)
		return nil, tooLargeError(p.max, &k)
	}
	return m, nil
}

func (p *pipeEnd) Close() error {
	st := p.st
	st.mu.Lock()
	st.closed = true
	st.cond.Broadcast()
	st.mu.Unlock()
	return nil
}
