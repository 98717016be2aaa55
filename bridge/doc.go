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
// time. Close ends a connection at once; Shutdown, a release of "init" by
// the peer, or the end of input end it in order, answering every request
// already received first (up to Options.DrainTimeout).
package bridge
