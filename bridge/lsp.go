package bridge

import (
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The Language Server Protocol's lifecycle, so that a stock LSP client
// library can host a bridge child: it sends initialize (and the
// notification initialized) first, shutdown and exit last.
//
//   - initialize is answered at once with a minimal InitializeResult: the
//     server's name and version (from rpc.discover's info) and, under
//     capabilities.experimental.mpbridge, the bootstrap interface and the
//     names of the methods served;
//   - initialized is accepted and ignored;
//   - shutdown is answered null once every call received before it has
//     finished (bounded by the drain limit); requests after it, other
//     than exit, are refused with CodeInvalidRequest, as LSP asks, and
//     notifications after it are dropped;
//   - exit shuts the endpoint down in order, as a release of init does
//     (a spawned child then exits with status 0, whether or not shutdown
//     came first).

// lspState is the lifecycle's state; the reader alone uses it.
type lspState struct {
	shutdown bool // shutdown was requested
}

// lspLifecycle handles m if it is one of LSP's lifecycle messages, or if
// it arrives after shutdown, and reports whether it did.
func (c *Conn) lspLifecycle(m *message, bt *batch) bool {
	switch m.method {
	case "initialize":
		if m.id != nil {
			c.answerFromReader(bt, appendResponse(nil, m.id, c.lspInitializeResult()))
		}
		return true
	case "initialized":
		return true
	case "shutdown":
		c.lsp.shutdown = true
		if m.id != nil {
			if bt != nil {
				c.answerFromReader(bt, appendResponse(nil, m.id, nil))
			} else {
				go c.answerShutdown(m.id)
			}
		}
		return true
	case "exit":
		if m.id != nil {
			c.answerFromReader(bt, appendResponse(nil, m.id, nil))
		}
		c.beginShutdown("exit")
		return true
	}
	if !c.lsp.shutdown {
		return false
	}
	if m.id != nil {
		c.answerFromReader(bt, appendErrorResponse(nil, m.id, &Error{Code: CodeInvalidRequest, Message: "invalid request: shutdown was requested; only exit is served"}))
	}
	occ, _ := c.importHandles(m.params)
	c.releaseMessageHandles(occ)
	return true
}

// answerShutdown answers a shutdown request once the calls received
// before it have finished, or the drain limit has passed.
func (c *Conn) answerShutdown(id jsontext.Value) {
	idle := make(chan struct{})
	c.update(func(s *state) { s.quiet = append(s.quiet, idle) })
	t := time.NewTimer(c.opts.DrainTimeout)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	case <-c.done:
		return
	}
	if err := c.fw.write(appendResponse(nil, id, nil)); err != nil {
		c.writeFailed(err)
	}
}

// lspInitializeResult is the result of initialize.
func (c *Conn) lspInitializeResult() []byte {
	var methods []string
	if c.opts.Discover != nil {
		var named []struct {
			Name string `json:"name"`
		}
		if b, err := json.Marshal(c.opts.Discover()); err == nil {
			_ = json.Unmarshal(b, &named, json.RejectUnknownMembers(false))
		}
		for _, n := range named {
			methods = append(methods, n.Name)
		}
	}
	if methods == nil {
		methods = []string{}
	}
	res := map[string]any{
		"capabilities": map[string]any{
			"experimental": map[string]any{
				"mpbridge": map[string]any{"interface": c.opts.InitInterface, "methods": methods},
			},
		},
		"serverInfo": map[string]any{"name": c.opts.InitInterface + " bridge endpoint", "version": "1.0.0"},
	}
	b, err := json.Marshal(res, json.Deterministic(true))
	if err != nil {
		return []byte("null")
	}
	return b
}
