package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/schollz/progressbar/v3"

	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	"github.com/mpbridge/mpbridge/wallet"
)

// syncWriter serialises the output of commands and of notifications.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// redirect sends the output to w2 until the function it returns is
// called.
func (w *syncWriter) redirect(w2 io.Writer) (restore func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.w
	w.w = w2
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.w = old
	}
}

func (w *syncWriter) printf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.w, format, args...)
}

// session is one connection to a node and the wallets used through it.
type session struct {
	ctx   context.Context
	out   *syncWriter
	quiet bool
	// json prints each command's reply as one JSON value, its errors on
	// errOut, and no notifications.
	json   bool
	errOut io.Writer
	// progress, if set, is the terminal where mining many blocks shows a
	// progress bar; bar is the bar shown, if any (under mu).
	progress io.Writer
	init     nodeinit.Init
	node     node.Node
	chain    node.Chain

	mu       sync.Mutex
	loader   wallet.WalletLoader
	wallets  map[string]wallet.Wallet // opened, with a balance subscription
	current  string
	handlers []node.Handler
	bar      *progressbar.ProgressBar
	vars     map[string]string
}

func newSession(ctx context.Context, init nodeinit.Init, out *syncWriter, current string, quiet bool) (*session, error) {
	s := &session{ctx: ctx, out: out, quiet: quiet, init: init, current: current,
		wallets: map[string]wallet.Wallet{}, vars: map[string]string{}}
	var err error
	if s.node, err = init.MakeNode(ctx); err != nil {
		return nil, err
	}
	if s.chain, err = init.MakeChain(ctx); err != nil {
		return nil, err
	}
	h, err := s.chain.HandleNotifications(ctx, &blockPrinter{s})
	if err != nil {
		return nil, err
	}
	s.handlers = append(s.handlers, h)
	return s, nil
}

// close gives back every subscription and object.
func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.handlers {
		callbacks.Release(h)
	}
	for _, w := range s.wallets {
		callbacks.Release(w)
	}
	callbacks.Release(s.loader)
	callbacks.Release(s.node)
	callbacks.Release(s.chain)
}

// blockPrinter prints the blocks the node connects.
type blockPrinter struct{ s *session }

func (p *blockPrinter) BlockConnected(_ context.Context, b node.Block) error {
	if !p.s.tick(1) && !p.s.quiet && !p.s.json {
		p.s.out.printf("* block %d %s (%s)\n", b.Height, b.Hash, plural(len(b.Txs), "transaction"))
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// header tells what a scripted session runs on.
func (s *session) header(c *config, nodePid int) {
	if s.json {
		return // the output is JSON values only
	}
	switch {
	case c.connect != "":
		s.out.printf("# mpgui[%d] attached to the node at %s; wallet commands go to the wallets it serves\n", os.Getpid(), c.connect)
	case c.inproc:
		s.out.printf("# mpgui[%d] spawned mpnode[%d], which runs the wallet inside its own process: two processes; mpnode serves the wallet commands\n", os.Getpid(), nodePid)
	default:
		s.out.printf("# mpgui[%d] spawned mpnode[%d], which spawned mpwallet: three processes; mpnode forwards the wallet commands to mpwallet\n", os.Getpid(), nodePid)
	}
}

// walletLoader returns the node's wallet loader.
func (s *session) walletLoader() (wallet.WalletLoader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loader != nil {
		return s.loader, nil
	}
	l, err := s.init.MakeWalletLoader(s.ctx)
	if err != nil {
		return nil, err
	}
	s.loader = l
	return l, nil
}

// open returns the wallet called name, subscribing to its balance the
// first time.
func (s *session) open(name string) (wallet.Wallet, error) {
	s.mu.Lock()
	w := s.wallets[name]
	s.mu.Unlock()
	if w != nil {
		return w, nil
	}
	l, err := s.walletLoader()
	if err != nil {
		return nil, err
	}
	if w, err = l.GetWallet(s.ctx, name); err != nil {
		return nil, err
	}
	return s.subscribe(name, w)
}

func (s *session) subscribe(name string, w wallet.Wallet) (wallet.Wallet, error) {
	h, err := w.HandleBalanceChanged(s.ctx, func(_ context.Context, balance int64) error {
		if !s.quiet && !s.json && !s.mining() {
			s.out.printf("* wallet %s: balance %d\n", name, balance)
		}
		return nil
	})
	if err != nil {
		callbacks.Release(w)
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.wallets[name]; old != nil {
		callbacks.Release(h)
		callbacks.Release(w)
		return old, nil
	}
	s.wallets[name] = w
	s.handlers = append(s.handlers, h)
	return w, nil
}

// wallet returns the wallet that wallet commands use: the one chosen, or
// the only one; with none it fails with errNoWallet.
func (s *session) wallet() (wallet.Wallet, string, error) {
	s.mu.Lock()
	name := s.current
	s.mu.Unlock()
	if name == "" {
		l, err := s.walletLoader()
		if err != nil {
			return nil, "", err
		}
		names, err := l.ListWallets(s.ctx)
		if err != nil {
			return nil, "", err
		}
		switch len(names) {
		case 0:
			return nil, "", errNoWallet
		case 1:
			name = names[0]
		default:
			return nil, "", fmt.Errorf("there are %d wallets (%s): choose one with usewallet NAME or -rpcwallet=NAME", len(names), strings.Join(names, ", "))
		}
		s.mu.Lock()
		s.current = name
		s.mu.Unlock()
	}
	w, err := s.open(name)
	return w, name, err
}

// prompt shows the height and the current wallet's balance.
func (s *session) prompt() string {
	h, err := s.node.GetBlockCount(s.ctx)
	if err != nil {
		return "[node unreachable] "
	}
	p := fmt.Sprintf("[height %d", h)
	s.mu.Lock()
	name, w := s.current, s.wallets[s.current]
	s.mu.Unlock()
	if w != nil {
		if b, err := w.GetBalance(s.ctx); err == nil {
			p += fmt.Sprintf(" | %s %d", name, b)
		} else {
			p += fmt.Sprintf(" | %s unreachable", name)
		}
	}
	return p + "] "
}

// result prints a command's output: its text, or with -json its value
// on one line.
func (s *session) result(r reply) {
	if s.json {
		b, err := json.Marshal(r.value)
		if err != nil {
			s.fail(fmt.Errorf("encoding the reply: %w", err))
			return
		}
		s.out.printf("%s\n", b)
		return
	}
	if r.text != "" {
		s.out.printf("%s\n", r.text)
	}
}

// fail prints a command's error: among the output, or with -json on
// errOut, so that the output stays JSON.
func (s *session) fail(err error) {
	if s.json {
		fmt.Fprintf(s.errOut, "error: %s\n", errText(err))
		return
	}
	s.out.printf("error: %s\n", errText(err))
}

var assignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$`)
var variable = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)

// line runs one line of a script or of the prompt and reports whether it
// went as expected.
func (s *session) line(line string, echo bool) bool {
	if line == "" {
		return true
	}
	if strings.HasPrefix(line, "#") {
		if echo && !s.json {
			s.out.printf("%s\n", line)
		}
		return true
	}
	expectErr := strings.HasPrefix(line, "!")
	line = strings.TrimSpace(strings.TrimPrefix(line, "!"))
	var assign string
	if m := assignment.FindStringSubmatch(line); m != nil {
		assign, line = m[1], m[2]
	}
	var undefined string
	line = variable.ReplaceAllStringFunc(line, func(v string) string {
		val, ok := s.vars[v[1:]]
		if !ok && undefined == "" {
			undefined = v
		}
		return val
	})
	if echo && !s.json {
		shown := line
		if assign != "" {
			shown = assign + " = " + line
		}
		if expectErr {
			shown = "! " + shown
		}
		s.out.printf("> %s\n", shown)
	}
	var out reply
	var err error
	switch f := strings.Fields(line); {
	case undefined != "":
		err = &usageError{fmt.Sprintf("undefined variable %s", undefined)}
	case len(f) == 0:
		err = &usageError{"no command"}
	default:
		out, err = s.exec(f)
	}
	if err != nil {
		s.fail(err)
		return expectErr
	}
	s.result(out)
	if assign != "" {
		s.vars[assign] = strings.TrimSpace(out.text)
	}
	if expectErr {
		s.fail(errors.New("the command was expected to fail"))
		return false
	}
	return true
}

// runScript runs every line of r and returns how many did not go as
// expected.
func (s *session) runScript(r io.Reader, echo bool) int {
	sc := bufio.NewScanner(r)
	bad := 0
	for sc.Scan() {
		if !s.line(strings.TrimSpace(sc.Text()), echo) {
			bad++
		}
	}
	if err := sc.Err(); err != nil {
		s.fail(fmt.Errorf("reading the script: %w", err))
		bad++
	}
	return bad
}
