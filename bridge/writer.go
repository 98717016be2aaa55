package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
)

// frameWriter writes whole messages in the connection's framing, or
// sends them one by one on a Channel. One lock keeps messages from
// interleaving, and its holder writes for those queued behind it: when
// several goroutines write at once, the first writes and the others'
// messages leave together in its next write (a group commit), so a burst
// of calls costs a few system calls rather than one each.
type frameWriter struct {
	sem   chan struct{} // the write lock: a channel, so waiting for it can be cancelled
	w     io.Writer
	ch    Channel // if set, messages go to ch.Send unframed, and w is unused
	mode  atomic.Int32
	err   error
	hdr   []byte
	trace func(dir string, msg []byte)

	// queued counts the bytes handed to write and not yet written (or
	// given up); above maxQueued the reader pauses (see waitQueued).
	queued    atomic.Int64
	maxQueued int64
	drained   chan struct{} // a token when queued falls to maxQueued or below

	// Messages waiting for the holder of the lock, in order: those of
	// writers that found the lock held (they wait for waiters.done), and
	// answers corked by the reader (writeLazy), which no one waits for.
	// The holder writes them before it lets the lock go (unlock), and
	// the holder of the reading role flushes corked ones before it waits
	// for input, so that answers to a burst of requests leave in one
	// write.
	cmu     sync.Mutex
	pend    [][]byte
	pendN   int         // their bytes, counted in queued
	waiters *wbatch     // the writers waiting for pend, if any
	hasCork atomic.Bool // pend is not empty

	// shut: the connection has finished; nothing more is written (a
	// handler cancelled by Close must not answer "cancelled" before the
	// streams close: the peer is to see the connection end).
	shut atomic.Bool
}

// A wbatch is the writers whose messages went out in one write.
type wbatch struct {
	done chan struct{} // closed once written
	err  error         // the write's outcome, set before done is closed
}

var errWriterShut = errors.New("connection finished")

// hold counts n bytes as queued until the returned func is called.
func (fw *frameWriter) hold(n int) func() {
	fw.queued.Add(int64(n))
	return func() { fw.unhold(n) }
}

// unhold stops counting n bytes as queued.
func (fw *frameWriter) unhold(n int) {
	if fw.queued.Add(-int64(n)) <= fw.maxQueued {
		select {
		case fw.drained <- struct{}{}:
		default:
		}
	}
}

// writeLazy queues msgs to be written with the next write or flush,
// without writing now. Only the holder of the reading role calls it, for
// answers to requests it ran itself: it flushes before it next waits for
// input (see Stream.stall), so nothing stays corked while no one reads.
func (fw *frameWriter) writeLazy(msgs ...[]byte) {
	fw.cmu.Lock()
	fw.pendLocked(msgs)
	fw.cmu.Unlock()
}

// pendLocked appends msgs to the messages waiting for the holder.
func (fw *frameWriter) pendLocked(msgs [][]byte) {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	fw.queued.Add(int64(n))
	fw.pend = append(fw.pend, msgs...)
	fw.pendN += n
	fw.hasCork.Store(true)
}

// maxCork bounds the corked bytes: about what a pipe holds. Past it,
// answers are written at once, and a peer that does not read stalls the
// reader as it would without corking.
const maxCork = 64 << 10

// corkRoom reports whether writeLazy may cork more.
func (fw *frameWriter) corkRoom() bool {
	fw.cmu.Lock()
	defer fw.cmu.Unlock()
	return fw.pendN < maxCork
}

// writeHeld writes the waiting messages, then msgs, as the holder of the
// lock, in one write, and tells the writers who waited how it went.
func (fw *frameWriter) writeHeld(msgs [][]byte) error {
	fw.cmu.Lock()
	q, n, b := fw.pend, fw.pendN, fw.waiters
	fw.pend, fw.pendN, fw.waiters = nil, 0, nil
	fw.hasCork.Store(false)
	fw.cmu.Unlock()
	if len(q) > 0 {
		msgs = append(q, msgs...)
	}
	var err error
	if len(msgs) > 0 {
		err = fw.writeLocked(msgs)
	}
	if n > 0 {
		fw.unhold(n)
	}
	if b != nil {
		b.err = err
		close(b.done)
	}
	return err
}

// needsFlush reports whether messages wait with no holder of the lock to
// write them. (The holder looks at the queue and lets the lock go under
// cmu, so a holder seen here will write what is queued now.)
func (fw *frameWriter) needsFlush() bool {
	if !fw.hasCork.Load() {
		return false
	}
	fw.cmu.Lock()
	defer fw.cmu.Unlock()
	return len(fw.pend) > 0 && len(fw.sem) == 0
}

// flush writes the corked messages, if any. It waits for the write lock
// until ctx ends; the messages then go with the next write instead.
func (fw *frameWriter) flush(ctx context.Context) error {
	if !fw.hasCork.Load() {
		return nil
	}
	if err := fw.lock(ctx); err != nil {
		return nil
	}
	defer fw.unlock()
	return fw.writeHeld(nil)
}

// over reports whether more output is queued than the budget allows.
func (fw *frameWriter) over() bool { return fw.queued.Load() > fw.maxQueued }

func (fw *frameWriter) lock(ctx context.Context) error {
	select {
	case fw.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case fw.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unlock lets the write lock go, after writing the messages queued
// behind the holder meanwhile. The queue is looked at and the lock let go
// under cmu, so a writer that queues finds either a holder that will
// write its message or a free lock.
func (fw *frameWriter) unlock() {
	for {
		fw.cmu.Lock()
		if len(fw.pend) == 0 {
			<-fw.sem
			fw.cmu.Unlock()
			return
		}
		fw.cmu.Unlock()
		_ = fw.writeHeld(nil) // a failure is sticky (fw.err): the waiters have it
	}
}

// write sends msgs, compact JSON values, in one write, each framed.
func (fw *frameWriter) write(msgs ...[]byte) error {
	return fw.writeCtx(context.Background(), msgs...)
}

// bigWrite is the size above which a cancellable write goes on in the
// background when its context ends, since a message cannot be cut short
// without corrupting the stream.
const bigWrite = 64 << 10

// writeCtx is write whose wait ends with ctx. A writer that finds the lock
// held queues its messages for the holder to write and waits for that
// write; if ctx ends first it returns the context's error, and its
// messages are still written (a cancelled call's request is then
// followed by its cancel). A large message with a context that can end
// waits for the lock itself, until ctx ends; if ctx ends while it is
// being written, the write is finished in the background.
func (fw *frameWriter) writeCtx(ctx context.Context, msgs ...[]byte) error {
	size := 0
	for _, m := range msgs {
		size += len(m)
	}
	if size < bigWrite || ctx.Done() == nil {
		fw.cmu.Lock()
		select {
		case fw.sem <- struct{}{}:
			fw.cmu.Unlock()
		default:
			// Someone is writing: it writes ours next, with any others
			// queued meanwhile.
			fw.pendLocked(msgs)
			if fw.waiters == nil {
				fw.waiters = &wbatch{done: make(chan struct{})}
			}
			b := fw.waiters
			fw.cmu.Unlock()
			select {
			case <-b.done:
				return b.err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		release := fw.hold(size)
		defer release()
		defer fw.unlock()
		return fw.writeHeld(msgs)
	}
	release := fw.hold(size)
	if err := fw.lock(ctx); err != nil {
		release()
		return err
	}
	done := make(chan error, 1)
	// The goroutine has its own copy of the list, so that msgs does not
	// escape and the common case above costs the caller no allocation.
	own := append([][]byte(nil), msgs...)
	go func() {
		defer release()
		defer fw.unlock()
		done <- fw.writeHeld(own)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (fw *frameWriter) writeLocked(msgs [][]byte) error {
	if fw.err != nil {
		return fw.err
	}
	if fw.shut.Load() {
		return errWriterShut
	}
	if fw.trace != nil {
		for _, m := range msgs {
			fw.trace("out", m)
		}
	}
	if fw.ch != nil {
		return fw.sendLocked(msgs)
	}
	lsp := Framing(fw.mode.Load()) == FramingLSP
	var out []byte
	if len(msgs) == 1 && !lsp {
		out = append(msgs[0], '\n') // usually fits the spare capacity
	} else {
		n := 0
		for _, m := range msgs {
			n += len(m) + 32
		}
		if n > 64<<10 && len(msgs) == 1 {
			// A large LSP body: header and body in two writes, no copy.
			return fw.writeLarge(msgs[0])
		}
		out = fw.hdr[:0]
		if cap(out) < n {
			out = make([]byte, 0, n)
		}
		for _, m := range msgs {
			if lsp {
				out = append(out, "Content-Length: "...)
				out = strconv.AppendInt(out, int64(len(m)), 10)
				out = append(out, "\r\n\r\n"...)
				out = append(out, m...)
			} else {
				out = append(append(out, m...), '\n')
			}
		}
		if cap(out) <= 256<<10 {
			fw.hdr = out[:0]
		}
	}
	_, err := fw.w.Write(out)
	if err != nil {
		fw.err = fmt.Errorf("write: %w", err)
	}
	return err
}

// sendLocked sends msgs on the Channel, one Send each.
func (fw *frameWriter) sendLocked(msgs [][]byte) error {
	for _, m := range msgs {
		if err := fw.ch.Send(m); err != nil {
			fw.err = fmt.Errorf("write: %w", err)
			return err
		}
	}
	return nil
}

func (fw *frameWriter) writeLarge(body []byte) error {
	hdr := strconv.AppendInt([]byte("Content-Length: "), int64(len(body)), 10)
	hdr = append(hdr, "\r\n\r\n"...)
	_, err := fw.w.Write(hdr)
	if err == nil {
		_, err = fw.w.Write(body)
	}
	if err != nil {
		fw.err = fmt.Errorf("write: %w", err)
	}
	return err
}
