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
// sends them one by one on a Channel. One mutex keeps messages from
// interleaving.
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

	// Corked output: messages handed to writeLazy and not yet written.
	// The next write takes them along, ahead of its own, and the holder
	// of the reading role flushes them before it waits for input, so
	// that answers to a burst of requests leave in one write.
	cmu     sync.Mutex
	corked  [][]byte
	corkedN int         // their bytes, counted in queued
	hasCork atomic.Bool // corked is not empty

	// shut: the connection has finished; nothing more is written (a
	// handler cancelled by Close must not answer "cancelled" before the
	// streams close: the peer is to see the connection end).
	shut atomic.Bool
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
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	fw.queued.Add(int64(n))
	fw.cmu.Lock()
	fw.corked = append(fw.corked, msgs...)
	fw.corkedN += n
	fw.hasCork.Store(true)
	fw.cmu.Unlock()
}

// maxCork bounds the corked bytes: about what a pipe holds. Past it,
// answers are written at once, and a peer that does not read stalls the
// reader as it would without corking.
const maxCork = 64 << 10

// corkRoom reports whether writeLazy may cork more.
func (fw *frameWriter) corkRoom() bool {
	fw.cmu.Lock()
	defer fw.cmu.Unlock()
	return fw.corkedN < maxCork
}

// uncork returns the corked messages followed by msgs, and how many bytes
// were corked (to unhold once written). The caller holds the write lock.
func (fw *frameWriter) uncork(msgs [][]byte) ([][]byte, int) {
	if !fw.hasCork.Load() {
		return msgs, 0
	}
	fw.cmu.Lock()
	all := append(fw.corked, msgs...)
	n := fw.corkedN
	fw.corked, fw.corkedN = nil, 0
	fw.hasCork.Store(false)
	fw.cmu.Unlock()
	return all, n
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
	msgs, n := fw.uncork(nil)
	if n == 0 {
		return nil
	}
	defer fw.unhold(n)
	return fw.writeLocked(msgs)
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

func (fw *frameWriter) unlock() { <-fw.sem }

// write sends msgs, compact JSON values, in one write, each framed.
func (fw *frameWriter) write(msgs ...[]byte) error {
	return fw.writeCtx(context.Background(), msgs...)
}

// bigWrite is the size above which a cancellable write goes on in the
// background when its context ends, since a message cannot be cut short
// without corrupting the stream.
const bigWrite = 64 << 10

// writeCtx is write whose wait for the write lock ends with ctx. A large
// message whose context ends while it is being written is finished in the
// background; writeCtx then returns the context's error.
func (fw *frameWriter) writeCtx(ctx context.Context, msgs ...[]byte) error {
	size := 0
	for _, m := range msgs {
		size += len(m)
	}
	release := fw.hold(size)
	if err := fw.lock(ctx); err != nil {
		release()
		return err
	}
	msgs, corked := fw.uncork(msgs)
	if corked > 0 {
		own := release
		release = func() { own(); fw.unhold(corked) }
	}
	if ctx.Done() == nil || size < bigWrite {
		defer release()
		defer fw.unlock()
		return fw.writeLocked(msgs)
	}
	done := make(chan error, 1)
	go func() {
		defer release()
		defer fw.unlock()
		done <- fw.writeLocked(msgs)
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
