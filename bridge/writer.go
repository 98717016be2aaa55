package bridge

import (
	"context"
	"fmt"
	"io"
	"strconv"
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
}

// hold counts n bytes as queued until the returned func is called.
func (fw *frameWriter) hold(n int) func() {
	fw.queued.Add(int64(n))
	return func() {
		if fw.queued.Add(-int64(n)) <= fw.maxQueued {
			select {
			case fw.drained <- struct{}{}:
			default:
			}
		}
	}
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
