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
	"strconv"
	"strings"
	"sync"

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
	init  nodeinit.Init
	node  node.Node
	chain node.Chain

	mu       sync.Mutex
	loader   wallet.WalletLoader
	wallets  map[string]wallet.Wallet // opened, with a balance subscription
	current  string
	handlers []node.Handler
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
	if !p.s.quiet {
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
	switch {
	case c.connect != "":
		s.out.printf("# mpgui[%d] attached to the node at %s\n", os.Getpid(), c.connect)
	case c.inproc:
		s.out.printf("# mpgui[%d] spawned mpnode[%d], which runs the wallet in its own process\n", os.Getpid(), nodePid)
	default:
		s.out.printf("# mpgui[%d] spawned mpnode[%d], which spawned mpwallet: three processes\n", os.Getpid(), nodePid)
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
		if !s.quiet {
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
// the only one, or a new one called "default" if there is none.
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
			w, err := l.CreateWallet(s.ctx, "default")
			if err != nil {
				return nil, "", err
			}
			s.out.printf("(created wallet default)\n")
			if _, err := s.subscribe("default", w); err != nil {
				return nil, "", err
			}
			name = "default"
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

// usageError is a command called the wrong way.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

type command struct {
	name  string
	usage string
	help  string
	args  int // exact number of arguments, or -1 for run to check
	run   func(s *session, args []string) (string, error)
}

var commands []*command

func init() {
	commands = []*command{
		{"help", "", "list the commands", 0, func(*session, []string) (string, error) { return helpText(), nil }},
		{"getblockcount", "", "height of the tip (genesis is 0)", 0, (*session).getBlockCount},
		{"getblock", "HEIGHT", "the block at HEIGHT, as JSON", 1, (*session).getBlock},
		{"generate", "N", "mine N blocks to a new address of the wallet", 1, (*session).generate},
		{"generatetoaddress", "N ADDRESS", "mine N blocks to ADDRESS; prints their hashes", 2, (*session).generateToAddress},
		{"createwallet", "NAME", "create a wallet (and use it, if none is in use)", 1, (*session).createWallet},
		{"listwallets", "", "the wallets' names", 0, (*session).listWallets},
		{"usewallet", "NAME", "use wallet NAME for the wallet commands", 1, (*session).useWallet},
		{"getnewaddress", "", "a new address of the wallet", 0, (*session).getNewAddress},
		{"getbalance", "", "the wallet's confirmed balance", 0, (*session).getBalance},
		{"getbalances", "", "every wallet's balance", 0, (*session).getBalances},
		{"isspendable", "ADDRESS", "whether the wallet holds the key of ADDRESS", 1, (*session).isSpendable},
		{"sendtoaddress", "ADDRESS AMOUNT", "send AMOUNT base units to ADDRESS; prints the txid", 2, (*session).sendToAddress},
		{"listtransactions", "", "the wallet's history", 0, (*session).listTransactions},
		{"status", "", "the height and every wallet's balance", 0, (*session).status},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == strings.ToLower(name) {
			return c
		}
	}
	if name == "quit" || name == "exit" {
		return &command{name: name}
	}
	return nil
}

func helpText() string {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "%-36s %s\n", strings.TrimSpace(c.name+" "+c.usage), c.help)
	}
	b.WriteString("quit")
	return b.String()
}

// exec runs one command.
func (s *session) exec(args []string) (string, error) {
	c := lookup(args[0])
	if c == nil || c.run == nil {
		return "", &usageError{fmt.Sprintf("unknown command %q; try help", args[0])}
	}
	if c.args >= 0 && len(args)-1 != c.args {
		return "", &usageError{"usage: " + strings.TrimSpace(c.name+" "+c.usage)}
	}
	return c.run(s, args[1:])
}

// result prints a command's output.
func (s *session) result(out string) {
	if out != "" {
		s.out.printf("%s\n", out)
	}
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
		if echo {
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
	if echo {
		shown := line
		if assign != "" {
			shown = assign + " = " + line
		}
		if expectErr {
			shown = "! " + shown
		}
		s.out.printf("> %s\n", shown)
	}
	var out string
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
		s.out.printf("error: %s\n", errText(err))
		return expectErr
	}
	s.result(out)
	if assign != "" {
		s.vars[assign] = strings.TrimSpace(out)
	}
	if expectErr {
		s.out.printf("error: the command was expected to fail\n")
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
		s.out.printf("error: reading the script: %v\n", err)
		bad++
	}
	return bad
}

// ----- the commands -----

func parseCount(arg string) (int, error) {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return 0, fmt.Errorf("invalid number of blocks %q: want a whole number", arg)
	}
	return n, nil
}

// parseAmount reads an amount of base units; its range is the wallet's
// business, so that the wallet's error names it.
func parseAmount(arg string) (int64, error) {
	n, err := strconv.ParseInt(arg, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("invalid amount %s: out of range (at most %d)", arg, node.MaxAmount)
	}
	if err != nil {
		return 0, fmt.Errorf("invalid amount %q: want a whole number of base units", arg)
	}
	return n, nil
}

func (s *session) getBlockCount([]string) (string, error) {
	n, err := s.node.GetBlockCount(s.ctx)
	return strconv.FormatInt(n, 10), err
}

func (s *session) getBlock(args []string) (string, error) {
	h, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return "", fmt.Errorf("invalid height %q: want a whole number", args[0])
	}
	b, err := s.chain.GetBlock(s.ctx, h)
	if err != nil {
		return "", err
	}
	out, err := json.MarshalIndent(b, "", "  ")
	return string(out), err
}

func (s *session) generate(args []string) (string, error) {
	n, err := parseCount(args[0])
	if err != nil {
		return "", err
	}
	w, _, err := s.wallet()
	if err != nil {
		return "", err
	}
	addr, err := w.GetNewAddress(s.ctx)
	if err != nil {
		return "", err
	}
	hashes, err := s.node.GenerateToAddress(s.ctx, n, addr)
	if err != nil {
		return "", err
	}
	tip, err := s.node.GetBlockCount(s.ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("mined %s to %s; the tip is at height %d", plural(len(hashes), "block"), addr, tip), nil
}

func (s *session) generateToAddress(args []string) (string, error) {
	n, err := parseCount(args[0])
	if err != nil {
		return "", err
	}
	hashes, err := s.node.GenerateToAddress(s.ctx, n, args[1])
	return strings.Join(hashes, "\n"), err
}

func (s *session) createWallet(args []string) (string, error) {
	l, err := s.walletLoader()
	if err != nil {
		return "", err
	}
	w, err := l.CreateWallet(s.ctx, args[0])
	if err != nil {
		return "", err
	}
	if _, err := s.subscribe(args[0], w); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == "" {
		s.current = args[0]
		return fmt.Sprintf("created wallet %s (in use)", args[0]), nil
	}
	return "created wallet " + args[0], nil
}

func (s *session) listWallets([]string) (string, error) {
	l, err := s.walletLoader()
	if err != nil {
		return "", err
	}
	names, err := l.ListWallets(s.ctx)
	if len(names) == 0 && err == nil {
		return "(no wallets)", nil
	}
	return strings.Join(names, "\n"), err
}

func (s *session) useWallet(args []string) (string, error) {
	if _, err := s.open(args[0]); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.current = args[0]
	s.mu.Unlock()
	return "using wallet " + args[0], nil
}

func (s *session) getNewAddress([]string) (string, error) {
	w, _, err := s.wallet()
	if err != nil {
		return "", err
	}
	return w.GetNewAddress(s.ctx)
}

func (s *session) getBalance([]string) (string, error) {
	w, _, err := s.wallet()
	if err != nil {
		return "", err
	}
	n, err := w.GetBalance(s.ctx)
	return strconv.FormatInt(n, 10), err
}

func (s *session) getBalances([]string) (string, error) {
	l, err := s.walletLoader()
	if err != nil {
		return "", err
	}
	names, err := l.ListWallets(s.ctx)
	if err != nil {
		return "", err
	}
	var lines []string
	for _, n := range names {
		w, err := s.open(n)
		if err != nil {
			return "", err
		}
		b, err := w.GetBalance(s.ctx)
		if err != nil {
			return "", err
		}
		lines = append(lines, fmt.Sprintf("%s %d", n, b))
	}
	if len(lines) == 0 {
		return "(no wallets)", nil
	}
	return strings.Join(lines, "\n"), nil
}

func (s *session) isSpendable(args []string) (string, error) {
	w, _, err := s.wallet()
	if err != nil {
		return "", err
	}
	ok, err := w.IsSpendable(s.ctx, args[0])
	return strconv.FormatBool(ok), err
}

func (s *session) sendToAddress(args []string) (string, error) {
	amount, err := parseAmount(args[1])
	if err != nil {
		return "", err
	}
	w, _, err := s.wallet()
	if err != nil {
		return "", err
	}
	return w.SendToAddress(s.ctx, args[0], amount)
}

func (s *session) listTransactions([]string) (string, error) {
	w, _, err := s.wallet()
	if err != nil {
		return "", err
	}
	entries, err := w.ListTransactions(s.ctx)
	if err != nil {
		return "", err
	}
	if len(entries) == 0 {
		return "(no transactions)", nil
	}
	var b strings.Builder
	for i, e := range entries {
		where := fmt.Sprintf("block %d", e.Height)
		if e.Height < 0 {
			where = "not mined yet"
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%-8s %+14d  %s  %s  txid %s", e.Category, e.Amount, e.Address, where, e.Txid)
	}
	return b.String(), nil
}

func (s *session) status([]string) (string, error) {
	h, err := s.node.GetBlockCount(s.ctx)
	if err != nil {
		return "", err
	}
	out := fmt.Sprintf("height %d", h)
	if _, err := s.walletLoader(); err == nil {
		b, err := s.getBalances(nil)
		if err != nil {
			return "", err
		}
		out += "\n" + b
	} else {
		out += "\n" + errText(err)
	}
	return out, nil
}
