// Package bridge is one end of a bidirectional JSON-RPC 2.0 connection
// between two processes, as the mpbridge protocol defines it
// (docs/PROTOCOL.md): both ends call and serve, objects cross as counted
// handles, callbacks are calls in the other direction, and calls nest both
// ways to any depth.
//
// # A connection
//
// New starts a connection over any pair of byte streams, a child's
// stdin and stdout or a socket. The end that serves a bootstrap object
// (Options.Bootstrap) answers calls addressed to "init":
//
//	server := bridge.New(os.Stdin, os.Stdout, &bridge.Options{Bootstrap: obj})
//	err := server.Wait() // nil after an orderly shutdown
//
// and the other end calls it:
//
//	client := bridge.New(childStdout, childStdin, nil)
//	var sum int
//	err := client.Call(ctx, "Init.add", map[string]int{"a": 2, "b": 3}, &sum)
//
// Framing (newline-delimited JSON, or LSP headers) is detected from the
// first bytes received, and answers follow it. The framing layer is its
// own small type that knows nothing of JSON-RPC: a Channel (Recv, Send,
// Close) of whole messages, either a Stream over bytes (NewStream) or an
// in-memory Pipe; what it cannot deliver it reports as a *FrameError.
// NewChannel runs a connection over any Channel, one Recv and one Send
// per message and no framing of its own; Pair connects two that way over
// a Pipe. The messages are the same as over a byte stream.
//
// # Objects and handles
//
// An Object serves the calls addressed to its handle. Objects returned in
// results or passed in params (at any depth) are exported and sent as
// {"$handle": id}; handles received become Remotes, or typed proxies when
// an Adapter knows the Go type (package callbacks provides one for
// registered interfaces and func types, package spawn installs it). A
// Remote received in a result owns a reference: Close gives it back. A
// handle received as an argument lives as long as the call, or as long as
// the objects the call returned, which is how a subscription keeps its
// callback.
//
// # Errors
//
// A failed call returns an *Error carrying the wire code; ErrorCode maps
// any error to its code, and errors.Is(err, context.Canceled) or
// errors.Is(err, ErrClosed) tell cancellation and lost connections apart.
// Methods choose their code by returning an *Error; a panicking method is
// answered with CodeInternalError and the connection goes on.
//
// # Concurrency and shutdown
//
// One goroutine at a time reads, and reading never waits long on
// application code: requests run concurrently, the reader runs a request
// itself and hands the reading to another goroutine as soon as the request
// calls the peer or takes more than 50 µs, notifications run one at a time in
// order, and an Object that implements Serial has its calls run one at a
// time. A caller waiting for its answer reads it itself when it can stop
// at the end of its context: always over pipes and sockets, whose reads
// can be interrupted, and otherwise when its context cannot end. So one
// call after another involves no other goroutine. Concurrent writers
// share system calls: whoever holds the write lock also writes what was
// queued behind it. Close ends a connection at once; Shutdown, a release of "init" by
// the peer, or the end of input end it in order, answering every request
// already received first (up to Options.DrainTimeout).
package bridge

// Design note: who reads, who writes, who runs user code.
//
// Files by role: conn.go (the Conn, its state and update), options.go,
// read.go (the reading role and the workers), inbound.go (routing what was
// read), serve.go (running the peer's requests), call.go (our calls),
// refs.go (references and disposal), codec.go (values and the handles in
// them), params.go (a request's params), shutdown.go, liveness.go, writer.go
// (the write lock, its queue and corked answers), framing.go, channel.go,
// stream.go, stream_lsp.go and skim.go (framing: splitting the input into
// messages).
//
// Reading is a role that one goroutine at a time holds (read.go says how
// the token moves). The holder reads a message and routes it (inbound.go):
// a response goes to the pending call that waits for it; release and
// cancel take effect inline, so they are ordered before anything the peer
// sent after them (the Close of a released object runs on the
// notification queue, ahead of whatever came after the release);
// notifications run one at a time, in order, on the notification queue
// (queue.go), and a request that arrives behind queued work starts once it
// has run. A request with nothing queued before it is run by the holder
// itself, watched by a timer (handoffDelay, one per connection, armed
// only when it is not already): if it is quick the holder reads on and
// no goroutine was woken; if it calls the peer or runs past the delay,
// the role passes to an idle worker, so a handler that calls back
// never keeps the answer from being read. Other requests go straight to
// workers.
//
// The holder is a worker, or a caller waiting for its answer: a caller
// takes the role if it is free and reads until its answer comes, so a
// call made after another costs no goroutine wake-up. It must be able to
// stop reading when its context ends. Over a pipe or a socket (an input
// with read deadlines) that is any context: its end pushes the deadline
// into the past, the read returns with whatever part of a message it had
// read kept in the Stream, the deadline is cleared, and the role passes
// on. Over other inputs, a read cannot be interrupted, so only a caller
// whose context never ends (context.Background), or a handler run by the
// holder that calls the peer with its own context (which ends by a cancel
// it reads itself, or with the input), reads; other callers wait for a
// worker to hand them their answer. Requests a caller reads go to
// workers, never run on the caller's stack, which may hold what they
// need. A holder that delivers the last awaited answer leaves the role
// free for lingerDelay before a worker takes it back. The role ends with
// the input (endOfInput).
//
// User code (Object.Call, Close of a dropped object, Adapter methods) runs
// on workers, the notification queue's goroutine, a serial object's queue
// goroutine, or the reader while it holds a quick request; never under a
// lock. Workers end after workerIdle without work or with the connection;
// the queue goroutines end when their queue is empty.
//
// Writing: any goroutine writes whole messages through the writer
// (writer.go), which has its own lock. A writer that finds the lock held
// queues its messages and waits (until its context ends) for the holder,
// which writes everything queued behind it in one write before it lets
// the lock go: a burst of calls costs a few system calls, not one each.
// The holder of the reading role corks the answers to requests it ran
// itself while more input is already buffered (Stream.more): they go out
// with the answer to the last request of the burst, which is written at
// once, or by a goroutine of their own if the holder is about to wait
// for input with answers still corked (stalled). Replies the reader
// produces itself (parse errors and the like) are written by the reader,
// in order, after anything corked.
//
// State: everything about the connection's life (phase, running requests,
// pending calls, why it ended) is in Conn.st under Conn.mu; the phase and
// the count of running requests change through Conn.update, which signals
// the drain once a stopping connection has nothing running. The handle
// tables have their own lock. Shutdown has one end, finish, which runs
// once: it fails every pending call, cancels running handlers, drops every
// export and closes the streams. Wait reports why the connection ended.
// Goroutines a connection starts, their owners and their ends:
//   - workers (read.go): started by give when no idle worker takes a job;
//     each ends after workerIdle without work, or when the connection has
//     finished;
//   - the notification queue's goroutine (queue.go) and a serial object's
//     (serve.go): started when work is queued on an idle queue, ended when
//     the queue runs dry;
//   - the drain (shutdown.go): started by beginShutdown, or run by the
//     holder of the reading role at the end of input (in a goroutine of its
//     own if the holder is a caller); it ends at finish;
//   - the timers' functions: the reader's watchdog (handoffDelay), the
//     role's linger (lingerDelay) and the liveness check, each a short run
//     that at most hands a job to a worker; finish stops the liveness
//     check; and the function a reading caller arms on its context
//     (context.AfterFunc in readFor), which sets the read deadline and is
//     stopped or waited for before the caller gives the role up;
//   - the flusher of corked answers (stalled), which ends when nothing is
//     corked; the sender of a cancelled call's cancel (sendCancel), which
//     ends with its write or the connection; in the drain, the flush of
//     corked answers, which ends with its write or the streams' close;
//   - a ping writer (liveness.go), which ends with its write or the
//     connection; the Close of an object dropped outside the reader
//     (refs.go), which ends with the Close.
