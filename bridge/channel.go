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

// SetReadDeadline fails: a Channel's Recv cannot be interrupted.
func (r *chanReader) SetReadDeadline(time.Time) error { return ErrNoDeadline }

// more is false: a Channel does not say what it has buffered, so the
// answers of a connection over one are never corked.
func (r *chanReader) more() bool { return false }

// Pipe returns the two ends of an in-memory message channel: what one end
// sends the other receives, one whole message at a time, in order. Send
// does not wait for the other end to call Recv: messages queue, without
// bound (a Conn over a Pipe has no backpressure from its peer). A message
// over maxMessage bytes (0: no limit) is received as a *FrameError of
// kind FrameTooLarge, carrying its id like a Stream's. Closing either end ends both: the other end receives
// what was already sent, then io.EOF.
func Pipe(maxMessage int) (Channel, Channel) {
	shared := &pipeState{done: make(chan struct{})}
	a := &pipeEnd{st: shared, max: maxMessage, wake: make(chan struct{}, 1), ack: make(chan struct{}, 1)}
	b := &pipeEnd{st: shared, max: maxMessage, wake: make(chan struct{}, 1), ack: make(chan struct{}, 1)}
	a.peer, b.peer = b, a
	shared.ends = [2]*pipeEnd{a, b}
	return a, b
}

type pipeState struct {
	ends      [2]*pipeEnd
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

// A pipeEnd receives the messages its peer sends.
//
// A Send that finds the receiver waiting wakes it and then waits until it
// has run (ack), as a write to an io.Pipe does: the receiver then runs on
// the sender's processor, where the message is, rather than being taken
// by another one while the sender goes on (which costs a third more time
// per call on two cores). The wait is for the scheduler only: the
// receiver is already waiting in Recv.
type pipeEnd struct {
	st   *pipeState
	peer *pipeEnd
	max  int
	wake chan struct{} // from the one Send that cleared waiting
	ack  chan struct{} // to that Send, once woken

	mu      sync.Mutex
	queue   [][]byte // messages sent to this end, queue[head:] not yet received
	head    int
	closed  bool // no more messages will be queued
	waiting bool // Recv waits for wake
}

// ErrPipeClosed is returned by Send on a closed Pipe.
var ErrPipeClosed = errors.New("bridge: send on a closed pipe")

func (p *pipeEnd) Send(msg []byte) error {
	q := p.peer
	m := append([]byte(nil), msg...)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrPipeClosed
	}
	q.queue = append(q.queue, m)
	woke := q.waiting
	q.waiting = false
	q.mu.Unlock()
	if woke {
		q.wake <- struct{}{}
		select {
		case <-q.ack:
		case <-q.st.done:
		}
	}
	return nil
}

func (p *pipeEnd) Recv() ([]byte, error) {
	for {
		p.mu.Lock()
		if p.head < len(p.queue) {
			m := p.queue[p.head]
			p.queue[p.head] = nil
			p.head++
			if p.head == len(p.queue) {
				p.queue, p.head = p.queue[:0], 0
			}
			p.mu.Unlock()
			if p.max > 0 && len(m) > p.max {
				var k skimmer
				k.feed(m)
				return nil, tooLargeError(p.max, &k)
			}
			return m, nil
		}
		if p.closed {
			p.mu.Unlock()
			return nil, io.EOF
		}
		p.waiting = true
		p.mu.Unlock()
		select {
		case <-p.wake:
			p.ack <- struct{}{}
		case <-p.st.done:
		}
	}
}

func (p *pipeEnd) Close() error {
	p.st.closeOnce.Do(func() {
		for _, e := range p.st.ends {
			e.mu.Lock()
			e.closed = true
			e.mu.Unlock()
		}
		close(p.st.done)
	})
	return nil
}
