package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// child is one process under test and the messages it writes.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tail

	mu     sync.Mutex
	out    []byte // read but not yet parsed
	eof    bool
	rerr   error
	signal chan struct{} // poked when out or eof changes

	exited  chan struct{}
	waitErr error
	inClose sync.Once
}

// message is one message read from the child.
type message struct {
	body    []byte
	framing string // "lines" or "lsp"
	node    *node  // nil if body is not valid JSON
	perr    error  // why body is not valid JSON
}

// errClosed is returned when the child's output has ended.
var errClosed = errors.New("output closed")

// errTimeout is returned when nothing arrived in time.
var errTimeout = errors.New("timed out")

func startChild(command, env []string, dir string, stderr io.Writer) (*child, error) {
	if len(command) == 0 {
		return nil, errors.New("no command to run")
	}
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	c := &child{cmd: cmd, stderr: &tail{max: 16 << 10, fwd: stderr}, signal: make(chan struct{}, 1), exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.stdin = in
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go c.read(out)
	return c, nil
}

// read collects the child's output; once it ends it reaps the child.
func (c *child) read(r io.Reader) {
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		c.mu.Lock()
		c.out = append(c.out, buf[:n]...)
		if err != nil {
			c.eof = true
			if !errors.Is(err, io.EOF) {
				c.rerr = err
			}
		}
		c.mu.Unlock()
		select {
		case c.signal <- struct{}{}:
		default:
		}
		if err != nil {
			break
		}
	}
	c.waitErr = c.cmd.Wait()
	close(c.exited)
}

// write sends b, in pieces of chunk bytes (0: at once) pause apart; it
// gives up after timeout (a child that does not read its input).
func (c *child) write(b []byte, chunk int, pause, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		if chunk <= 0 {
			_, err := c.stdin.Write(b)
			done <- err
			return
		}
		for i := 0; i < len(b); i += chunk {
			if i > 0 {
				time.Sleep(pause)
			}
			if _, err := c.stdin.Write(b[i:min(i+chunk, len(b))]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("writing %d bytes: the child did not read its input within %s", len(b), timeout)
	}
}

func (c *child) closeInput() {
	c.inClose.Do(func() { _ = c.stdin.Close() })
}

// next returns the next message, errClosed at the end of output, or
// errTimeout if nothing complete arrived by deadline.
func (c *child) next(deadline time.Time) (*message, error) {
	for {
		c.mu.Lock()
		m, ok, err := c.parse()
		eof := c.eof
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if ok {
			return m, nil
		}
		if eof {
			return nil, errClosed
		}
		d := time.Until(deadline)
		if d <= 0 {
			return nil, errTimeout
		}
		t := time.NewTimer(d)
		select {
		case <-c.signal:
		case <-t.C:
		}
		t.Stop()
	}
}

// pending returns output received but not yet read as messages.
func (c *child) pending() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out)
}

// parse takes one message off c.out if a whole one is there. A message
// framed as a line starts with '{' or '['; anything else must be an LSP
// header block. Output that is neither is returned as a message with an
// error, so the case fails showing it.
func (c *child) parse() (*message, bool, error) {
	b := c.out
	if len(b) == 0 {
		return nil, false, nil
	}
	if b[0] == '{' || b[0] == '[' {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if c.eof {
				c.out = nil
				return &message{body: b, framing: "lines", perr: errors.New("the last line has no line end")}, true, nil
			}
			return nil, false, nil
		}
		c.out = b[i+1:]
		return decodeMessage(b[:i], "lines"), true, nil
	}
	if isLetter(b[0]) {
		end := bytes.Index(b, []byte("\r\n\r\n"))
		if end < 0 {
			if c.eof || len(b) > 8<<10 {
				c.out = nil
				return &message{body: b, framing: "lsp", perr: errors.New("incomplete LSP header block")}, true, nil
			}
			return nil, false, nil
		}
		length := -1
		for _, line := range strings.Split(string(b[:end]), "\r\n") {
			name, val, ok := strings.Cut(line, ":")
			if !ok {
				c.out = b[end+4:]
				return &message{body: b[:end], framing: "lsp", perr: fmt.Errorf("bad LSP header line %q", line)}, true, nil
			}
			if strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
				n, err := strconv.Atoi(strings.TrimSpace(val))
				if err != nil || n < 0 {
					c.out = b[end+4:]
					return &message{body: b[:end], framing: "lsp", perr: fmt.Errorf("bad Content-Length %q", val)}, true, nil
				}
				length = n
			}
		}
		if length < 0 {
			c.out = b[end+4:]
			return &message{body: b[:end], framing: "lsp", perr: errors.New("LSP header block without Content-Length")}, true, nil
		}
		body := b[end+4:]
		if len(body) < length {
			if c.eof {
				c.out = nil
				return &message{body: body, framing: "lsp", perr: errors.New("output ended inside an LSP body")}, true, nil
			}
			return nil, false, nil
		}
		c.out = body[length:]
		return decodeMessage(body[:length], "lsp"), true, nil
	}
	// Garbage: report the line it is on.
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if !c.eof {
			return nil, false, nil
		}
		i = len(b) - 1
	}
	c.out = b[i+1:]
	return &message{body: b[:i+1], framing: "lines", perr: errors.New("not a JSON-RPC message (stdout is for protocol only)")}, true, nil
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

func decodeMessage(body []byte, framing string) *message {
	m := &message{body: bytes.Clone(body), framing: framing}
	m.node, m.perr = parseNode(m.body, true)
	if m.perr == nil {
		m.perr = validate(m)
	}
	return m
}

// validate checks the shape every message must have (contract §1 and
// §2): compact single-line JSON in line framing, "jsonrpc":"2.0", a
// response with an id and exactly one of result and error, an error with
// an integer code and a string message, a request with a string method
// and params by name.
func validate(m *message) error {
	if m.framing == "lines" && !isCompact(m.body) {
		return errors.New("a line-framed message must be compact JSON")
	}
	n := m.node
	if n.kind == '[' {
		if len(n.elems) == 0 {
			return errors.New("an empty batch reply")
		}
		for i, e := range n.elems {
			if err := validateObject(e); err != nil {
				return fmt.Errorf("batch element %d: %w", i, err)
			}
		}
		return nil
	}
	return validateObject(n)
}

func validateObject(n *node) error {
	if n.kind != '{' {
		return fmt.Errorf("a message must be an object, got %s", kindName(n.kind))
	}
	v := n.member("jsonrpc")
	if v == nil || v.kind != '"' || v.str != "2.0" {
		return errors.New(`a message must have "jsonrpc":"2.0"`)
	}
	for _, k := range n.keys {
		switch k {
		case "jsonrpc", "id", "method", "params", "result", "error":
		default:
			return fmt.Errorf("unknown member %q", k)
		}
	}
	id := n.member("id")
	if id != nil && id.kind != '"' && id.kind != '0' && id.kind != 'n' {
		return fmt.Errorf("id must be a string, a number or null, got %s", kindName(id.kind))
	}
	if method := n.member("method"); method != nil {
		if method.kind != '"' {
			return errors.New("method must be a string")
		}
		if n.member("result") != nil || n.member("error") != nil {
			return errors.New("a request cannot have result or error")
		}
		if p := n.member("params"); p != nil && p.kind != '{' {
			return errors.New("params must be an object (by name)")
		}
		return nil
	}
	if id == nil {
		return errors.New("a response must have an id")
	}
	r, e := n.member("result"), n.member("error")
	if (r == nil) == (e == nil) {
		return errors.New("a response must have exactly one of result and error")
	}
	if e != nil {
		if e.kind != '{' {
			return errors.New("error must be an object")
		}
		code, msg := e.member("code"), e.member("message")
		if code == nil || code.kind != '0' || !isInteger(code.raw) {
			return errors.New("error.code must be an integer")
		}
		if msg == nil || msg.kind != '"' {
			return errors.New("error.message must be a string")
		}
		for _, k := range e.keys {
			if k != "code" && k != "message" && k != "data" {
				return fmt.Errorf("unknown member error.%s", k)
			}
		}
	}
	return nil
}

// waitExit waits up to d for the child to exit and returns its status
// (-1 for a signal), or ok=false.
func (c *child) waitExit(d time.Duration) (code int, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		return 0, false
	}
	return c.status(), true
}

func (c *child) status() int {
	if c.waitErr == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(c.waitErr, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// describeExit says how the child ended.
func (c *child) describeExit() string {
	select {
	case <-c.exited:
	default:
		return "still running"
	}
	if c.waitErr == nil {
		return "exit status 0"
	}
	return c.waitErr.Error()
}

// stop ends the child: it closes its input, waits up to grace, then
// kills it and waits for the reader.
func (c *child) stop(grace time.Duration) {
	c.closeInput()
	if _, ok := c.waitExit(grace); ok {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// tail keeps the last max bytes written, forwarding them to fwd if set.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
	fwd io.Writer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = bytes.Clone(t.buf[len(t.buf)-t.max:])
	}
	if t.fwd != nil {
		_, _ = t.fwd.Write(p)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
