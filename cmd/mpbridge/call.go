package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chzyer/readline"
	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/internal/bytesize"
	"github.com/mpbridge/mpbridge/internal/sockflags"
	"github.com/mpbridge/mpbridge/spawn"
)

func init() {
	register(&command{
		name:    "call",
		args:    "[flags] -- CMD ARGS... | -connect=ADDR [flags]",
		summary: "call a child (or a listener) line by line: METHOD PARAMS in, one JSON answer out",
		run:     runCall,
	})
}

const callUsage = `Usage: mpbridge call [flags] -- CMD ARGS...
       mpbridge call [flags] -connect=ADDR

Spawns CMD ARGS (its full command line: nothing is added, so a bridge
binary needs its -serve) or connects to a listener, reads calls from stdin,
one a line, and prints each answer as one line of JSON on stdout. A failed
call prints its error object on stderr, and the exit status is 1 at the end
if any call failed. On a terminal it is a prompt with history.

A line is

	[$NAME =] [$TARGET] METHOD [PARAMS]

METHOD is Interface.method (or rpc.discover, rpc.handles, ...) and PARAMS a
JSON object. Without $TARGET the call goes to the peer's Init; $TARGET
calls the handle bound to $TARGET ($self). "$NAME =" binds the handle the
call returns to $NAME (handles not bound are released at once). Inside
PARAMS, the string "$NAME" stands for that handle, "$cb" for a callback
object that prints each call it receives on stdout, as
{"callback": "Interface.method", "params": {...}}, and answers
-callback-result; its interface is found with rpc.discover (or give it:
"$cb:ChainNotifications"). "$$x" is the string "$x". "release $NAME"
releases a handle; lines starting with # are comments.

	printf '$n = Init.makeNode\n$n Node.getBlockCount\n' | mpbridge call -- mpnode -serve

Flags:
`

// nameRE is what a $NAME may be.
var nameRE = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*$`)

type callConfig struct {
	connect     string
	sock        sockflags.Dialer
	cbResult    string
	cbIface     string
	timeout     time.Duration
	maxMsg      int
	argv        []string
	forcePrompt bool
}

func runCall(args []string) int {
	var c callConfig
	fs := flag.NewFlagSet("mpbridge call", flag.ContinueOnError)
	fs.StringVar(&c.connect, "connect", "", "call the Init of the listener at `ADDR` ("+sockflags.AddrForms+") instead of spawning CMD")
	c.sock.Register(fs, "needed for tcp: and tls:")
	fs.StringVar(&c.cbResult, "callback-result", "null", "the `JSON` value that \"$cb\" answers to every call")
	fs.StringVar(&c.cbIface, "callback-interface", "", "the interface of \"$cb\" where rpc.discover does not tell (default Callback)")
	fs.DurationVar(&c.timeout, "timeout", 0, "cancel a call that takes longer than this (0: never)")
	bytesize.Var(fs, &c.maxMsg, "max-message", bridge.DefaultMaxMessageSize, "largest message accepted")
	fs.BoolVar(&c.forcePrompt, "prompt", false, "prompt with line editing and history even if stdin is not a terminal")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), callUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c.argv = fs.Args()
	switch {
	case c.connect == "" && len(c.argv) == 0:
		fmt.Fprintln(os.Stderr, "mpbridge call: give the child's command line after --, or -connect=ADDR")
		fs.Usage()
		return 2
	case c.connect != "" && len(c.argv) > 0:
		fmt.Fprintf(os.Stderr, "mpbridge call: -connect and a command line %q: give one of them\n", c.argv)
		return 2
	case !jsontext.Value(c.cbResult).IsValid():
		fmt.Fprintf(os.Stderr, "mpbridge call: -callback-result=%s is not JSON\n", c.cbResult)
		return 2
	}
	if c.connect != "" {
		if err := c.sock.Check(c.connect); err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 2
		}
	}

	interactive := c.forcePrompt || isTerminal(os.Stdin)
	var (
		rl   *readline.Instance
		out  io.Writer = os.Stdout
		comp           = &completer{}
	)
	if interactive {
		var err error
		rl, err = readline.NewEx(&readline.Config{
			Prompt:          "mpbridge> ",
			HistoryFile:     historyFile(),
			InterruptPrompt: "^C",
			EOFPrompt:       "",
			Stdin:           io.NopCloser(os.Stdin),
			AutoComplete:    comp,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 1
		}
		defer rl.Close()
		out = rl.Stdout()
	}

	cl := &caller{out: out, errOut: os.Stderr, cbResult: jsontext.Value(c.cbResult), cbIface: c.cbIface,
		timeout: c.timeout, vars: map[string]*bridge.Remote{}, cbs: map[string]*callbackObject{}}
	copts := &bridge.Options{MaxMessageSize: c.maxMsg}
	var closeConn func() error
	if c.connect != "" {
		sopts, err := c.sock.Options(c.connect, "")
		if err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conn, err := spawn.Dial(ctx, c.connect, sopts, copts)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 1
		}
		cl.conn, cl.init = conn, conn.Bootstrap()
		closeConn = func() error {
			_ = conn.Bootstrap().Close()
			return conn.Close()
		}
	} else {
		child, err := spawn.SpawnCommand(c.argv, nil, copts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 1
		}
		cl.conn, cl.init = child.Conn(), child.Init()
		closeConn = child.Close
	}

	if rl != nil {
		comp.cl = cl
		cl.interactive(rl)
	} else {
		cl.script(os.Stdin)
	}
	cl.releaseAll()
	if err := closeConn(); err != nil {
		fmt.Fprintln(os.Stderr, "mpbridge call:", err)
		cl.failed = true
	}
	if cl.failed {
		return 1
	}
	return 0
}

// historyFile is where the prompt keeps its history: the user's cache
// directory, or none.
func historyFile() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	dir = filepath.Join(dir, "mpbridge")
	if os.MkdirAll(dir, 0o700) != nil {
		return ""
	}
	return filepath.Join(dir, "call_history")
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// caller runs the lines of one mpbridge call session.
type caller struct {
	conn     *bridge.Conn
	init     *bridge.Remote
	cbResult jsontext.Value
	cbIface  string
	timeout  time.Duration

	outMu  sync.Mutex // one line at a time on out and errOut
	out    io.Writer
	errOut io.Writer

	mu      sync.Mutex // guards the fields below (callbacks run concurrently)
	vars    map[string]*bridge.Remote
	cbs     map[string]*callbackObject
	methods map[string]jsontext.Value // rpc.discover's methods, by name, once asked
	failed  bool
}

// script runs the lines of r, one call after the other.
func (cl *caller) script(r io.Reader) {
	sc := newLineScanner(r)
	for n := 1; sc.Scan(); n++ {
		cl.line(context.Background(), n, sc.Text())
	}
	if err := sc.Err(); err != nil {
		cl.printErr(fmt.Sprintf("mpbridge call: reading stdin: %v", err))
		cl.setFailed()
	}
}

// interactive reads lines at a prompt until end of input; Ctrl-C cancels
// the call in progress, or clears the line being typed.
func (cl *caller) interactive(rl *readline.Instance) {
	for n := 1; ; n++ {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if err != nil {
			return
		}
		if t := strings.TrimSpace(line); t == "quit" || t == "exit" {
			return
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		cl.line(ctx, n, line)
		stop()
	}
}

func newLineScanner(r io.Reader) *lineScanner {
	s := &lineScanner{r: r}
	return s
}

// lineScanner reads lines of any length.
type lineScanner struct {
	r    io.Reader
	buf  []byte
	line string
	err  error
	eof  bool
}

func (s *lineScanner) Scan() bool {
	for {
		if i := slices.Index(s.buf, '\n'); i >= 0 {
			s.line = string(s.buf[:i])
			s.buf = s.buf[i+1:]
			return true
		}
		if s.eof {
			if len(s.buf) > 0 {
				s.line, s.buf = string(s.buf), nil
				return true
			}
			return false
		}
		chunk := make([]byte, 64<<10)
		n, err := s.r.Read(chunk)
		s.buf = append(s.buf, chunk[:n]...)
		if err != nil {
			s.eof = true
			if err != io.EOF {
				s.err = err
			}
		}
	}
}

func (s *lineScanner) Text() string { return strings.TrimSuffix(s.line, "\r") }
func (s *lineScanner) Err() error   { return s.err }

// A parsed line.
type callLine struct {
	bind    string // "$n" of "$n = ...", or ""
	release string // "$n" of "release $n", or ""
	target  string // "$n" of "$n Method", or ""
	method  string
	params  string // JSON text, or ""
}

// parseLine splits a line into its parts; ok is false for a blank line or
// a comment.
func parseLine(s string) (l callLine, ok bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "#") {
		return l, false, nil
	}
	word := func() string {
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			w := s
			s = ""
			return w
		}
		w := s[:i]
		s = strings.TrimSpace(s[i:])
		return w
	}
	w := word()
	if i := strings.IndexByte(w, '='); i > 0 && strings.HasPrefix(w, "$") {
		// "$n=Init.makeNode": the = needs no spaces around it.
		w, s = w[:i], strings.TrimSpace(w[i:]+" "+s)
	}
	if strings.HasPrefix(w, "$") && strings.HasPrefix(s, "=") {
		if !nameRE.MatchString(w) || w == "$cb" {
			return l, true, fmt.Errorf("cannot bind %s: a name is $ and a letter, then letters, digits or _ ($cb is the callback)", w)
		}
		l.bind = w
		s = strings.TrimSpace(s[1:])
		w = word()
	}
	if w == "release" && strings.HasPrefix(s, "$") && l.bind == "" {
		l.release = word()
		if s != "" {
			return l, true, fmt.Errorf("release takes one $NAME, not %q", s)
		}
		return l, true, nil
	}
	if strings.HasPrefix(w, "$") {
		if !nameRE.MatchString(w) {
			return l, true, fmt.Errorf("%q is not a $NAME", w)
		}
		l.target = w
		w = word()
	}
	if w == "" || strings.HasPrefix(w, "{") {
		return l, true, errors.New("no method: a line is [$NAME =] [$TARGET] METHOD [PARAMS-JSON]")
	}
	l.method = w
	l.params = s
	if l.params != "" && !strings.HasPrefix(l.params, "{") {
		return l, true, fmt.Errorf("params must be a JSON object, not %q", l.params)
	}
	return l, true, nil
}

// line runs one input line.
func (cl *caller) line(ctx context.Context, n int, text string) {
	l, ok, err := parseLine(text)
	if !ok {
		return
	}
	if err == nil {
		err = cl.run(ctx, l)
	}
	if err != nil {
		cl.setFailed()
		var e *bridge.Error
		if errors.As(err, &e) {
			b, _ := json.Marshal(e)
			cl.printErr(string(b))
			return
		}
		cl.printErr(fmt.Sprintf("mpbridge call: line %d: %v", n, err))
	}
}

func (cl *caller) run(ctx context.Context, l callLine) error {
	if l.release != "" {
		r, err := cl.lookup(l.release)
		if err != nil {
			return err
		}
		cl.mu.Lock()
		delete(cl.vars, l.release)
		cl.mu.Unlock()
		return r.Close()
	}
	target := cl.init
	if l.target != "" {
		var err error
		if target, err = cl.lookup(l.target); err != nil {
			return err
		}
	}
	var params any
	if l.params != "" {
		v, err := cl.substitute(jsontext.Value(l.params), l.method, "")
		if err != nil {
			return err
		}
		params = v
	}
	if cl.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cl.timeout)
		defer cancel()
	}
	if l.bind == "" {
		// The answer as it came; handles in it are released.
		var res jsontext.Value
		if err := target.Call(ctx, l.method, params, &res); err != nil {
			return err
		}
		if res == nil {
			res = jsontext.Value("null")
		}
		_ = res.Compact()
		cl.print(string(res))
		return nil
	}
	var res any
	if err := target.Call(ctx, l.method, params, &res); err != nil {
		return err
	}
	r, ok := res.(*bridge.Remote)
	if !ok {
		releaseIn(res)
		b, _ := json.Marshal(res)
		cl.print(string(b))
		return fmt.Errorf("cannot bind %s: the answer is not a handle", l.bind)
	}
	cl.mu.Lock()
	old := cl.vars[l.bind]
	cl.vars[l.bind] = r
	cl.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	b, _ := jsontext.AppendQuote([]byte(`{"$handle":`), r.ID())
	cl.print(string(append(b, '}')))
	return nil
}

// releaseIn gives back the references of the handles in an answer that
// is not kept.
func releaseIn(v any) {
	switch v := v.(type) {
	case *bridge.Remote:
		_ = v.Close()
	case map[string]any:
		for _, x := range v {
			releaseIn(x)
		}
	case []any:
		for _, x := range v {
			releaseIn(x)
		}
	}
}

func (cl *caller) lookup(name string) (*bridge.Remote, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	r, ok := cl.vars[name]
	if !ok {
		return nil, fmt.Errorf("%s is not bound (bind it with \"%s = METHOD ...\")", name, name)
	}
	return r, nil
}

// substitute turns PARAMS text into a value to send: "$NAME" strings
// become the bound handles, "$cb" the callback object, "$$x" the string
// "$x"; everything else is sent as it was written. method is the call's
// method and param the name of the params member v is (both "" for the
// params object itself and for values nested deeper).
func (cl *caller) substitute(v jsontext.Value, method, param string) (any, error) {
	if !v.IsValid() {
		return nil, fmt.Errorf("params are not valid JSON: %s", v)
	}
	switch v.Kind() {
	case '{':
		var members map[string]jsontext.Value
		if err := json.Unmarshal(v, &members); err != nil {
			return nil, err
		}
		out := make(map[string]any, len(members))
		for k, m := range members {
			// A member of the params object names the param (so "$cb"
			// can look up its interface); deeper, nothing does.
			mm, pp := "", ""
			if param == "" && method != "" {
				mm, pp = method, k
			}
			x, err := cl.substitute(m, mm, pp)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case '[':
		var items []jsontext.Value
		if err := json.Unmarshal(v, &items); err != nil {
			return nil, err
		}
		out := make([]any, len(items))
		for i, m := range items {
			x, err := cl.substitute(m, "", "")
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case '"':
		s, _ := stringOf(v)
		switch {
		case strings.HasPrefix(s, "$$"):
			return s[1:], nil
		case s == "$cb" || strings.HasPrefix(s, "$cb:"):
			return cl.callback(s, method, param)
		case nameRE.MatchString(s):
			return cl.lookup(s)
		}
	}
	return v, nil
}

func stringOf(v jsontext.Value) (string, bool) {
	var s string
	if v.Kind() != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// callback returns the callback object for "$cb" or "$cb:IFACE", passed
// as param of method: its interface is IFACE, else the one rpc.discover
// gives the param, else -callback-interface, else Callback.
func (cl *caller) callback(s, method, param string) (*callbackObject, error) {
	iface := strings.TrimPrefix(strings.TrimPrefix(s, "$cb"), ":")
	if iface == "" && method != "" {
		iface = cl.discoverIface(method, param)
	}
	if iface == "" {
		iface = cmpOr(cl.cbIface, "Callback")
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	o, ok := cl.cbs[iface]
	if !ok {
		o = &callbackObject{cl: cl, iface: iface}
		cl.cbs[iface] = o
	}
	return o, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// discoverIface reads the interface of param of method from the peer's
// rpc.discover: a handle's schema is titled "IFACE handle".
func (cl *caller) discoverIface(method, param string) string {
	cl.mu.Lock()
	methods := cl.methods
	cl.mu.Unlock()
	if methods == nil {
		var doc struct {
			Methods []struct {
				Name   string         `json:"name"`
				Params jsontext.Value `json:"params"`
			} `json:"methods"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		methods = map[string]jsontext.Value{}
		if err := cl.conn.Call(ctx, "rpc.discover", nil, &doc); err == nil {
			for _, m := range doc.Methods {
				methods[m.Name] = m.Params
			}
		}
		cl.mu.Lock()
		cl.methods = methods
		cl.mu.Unlock()
	}
	var params []struct {
		Name   string `json:"name"`
		Schema struct {
			Title string `json:"title"`
		} `json:"schema"`
	}
	if json.Unmarshal(methods[method], &params) != nil {
		return ""
	}
	for _, p := range params {
		if p.Name == param {
			if iface, ok := strings.CutSuffix(p.Schema.Title, " handle"); ok {
				return iface
			}
		}
	}
	return ""
}

// callbackObject is "$cb": it prints every call it receives and answers
// the -callback-result value.
type callbackObject struct {
	cl    *caller
	iface string
}

func (o *callbackObject) Interface() string { return o.iface }

func (o *callbackObject) Call(_ context.Context, method string, p *bridge.Params) (any, error) {
	b, _ := jsontext.AppendQuote([]byte(`{"callback":`), o.iface+"."+method)
	b = append(b, `,"params":{`...)
	for i, name := range p.Names() {
		if i > 0 {
			b = append(b, ',')
		}
		raw, _ := p.Raw(name)
		b, _ = jsontext.AppendQuote(b, name)
		b = append(b, ':')
		v := jsontext.Value(slices.Clone(raw))
		_ = v.Compact()
		b = append(b, v...)
	}
	b = append(b, "}}"...)
	o.cl.print(string(b))
	return o.cl.cbResult, nil
}

func (cl *caller) print(line string) {
	cl.outMu.Lock()
	defer cl.outMu.Unlock()
	fmt.Fprintln(cl.out, line)
}

func (cl *caller) printErr(line string) {
	cl.outMu.Lock()
	defer cl.outMu.Unlock()
	fmt.Fprintln(cl.errOut, line)
}

func (cl *caller) setFailed() {
	cl.mu.Lock()
	cl.failed = true
	cl.mu.Unlock()
}

// releaseAll releases the bound handles, in name order.
func (cl *caller) releaseAll() {
	cl.mu.Lock()
	names := make([]string, 0, len(cl.vars))
	for n := range cl.vars {
		names = append(names, n)
	}
	slices.Sort(names)
	rs := make([]*bridge.Remote, 0, len(names))
	for _, n := range names {
		rs = append(rs, cl.vars[n])
	}
	clear(cl.vars)
	cl.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, r := range rs {
		_ = r.CloseContext(ctx)
	}
}

// completer completes method names (from rpc.discover) and bound names
// at the prompt.
type completer struct{ cl *caller }

func (c *completer) Do(line []rune, pos int) (newLine [][]rune, length int) {
	start := pos
	for start > 0 && line[start-1] != ' ' && line[start-1] != '\t' && line[start-1] != '"' {
		start--
	}
	prefix := string(line[start:pos])
	var words []string
	if strings.HasPrefix(prefix, "$") {
		c.cl.mu.Lock()
		for n := range c.cl.vars {
			words = append(words, n)
		}
		c.cl.mu.Unlock()
		words = append(words, "$cb")
	} else {
		c.cl.discoverIface("", "")
		c.cl.mu.Lock()
		for n := range c.cl.methods {
			words = append(words, n)
		}
		c.cl.mu.Unlock()
		words = append(words, "release")
	}
	slices.Sort(words)
	for _, w := range words {
		if rest, ok := strings.CutPrefix(w, prefix); ok {
			newLine = append(newLine, []rune(rest+" "))
		}
	}
	return newLine, len([]rune(prefix))
}

var _ bridge.Object = (*callbackObject)(nil)
