package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/wallet"
)

// usageError is a command called the wrong way.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// errNoWallet refuses a wallet command when the node has no wallet, as
// bitcoin-cli does, rather than creating one behind the user's back.
var errNoWallet = errors.New("no wallet loaded: use 'createwallet NAME' (or 'usewallet NAME' for one the node has)")

// reply is a command's output: text for people, and the one JSON value
// that -json prints.
type reply struct {
	text  string
	value any
}

// textReply is a reply whose JSON value is its text.
func textReply(s string) reply { return reply{s, s} }

type command struct {
	name  string
	usage string
	help  string
	args  int // exact number of arguments, or -1 for run to check
	run   func(s *session, args []string) (reply, error)
}

var commands []*command

func init() {
	commands = []*command{
		{"help", "[COMMAND]", "list the commands, or tell what COMMAND does", -1, (*session).help},
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

// walletCommands use the current wallet: with no wallet loaded they are
// refused with errNoWallet.
var walletCommands = "generate getnewaddress getbalance isspendable sendtoaddress listtransactions"

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

func (c *command) synopsis() string { return strings.TrimSpace(c.name + " " + c.usage) }

func helpText() string {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "%-36s %s\n", c.synopsis(), c.help)
	}
	b.WriteString("quit")
	return b.String()
}

// helpEntry is a command as help describes it in JSON.
type helpEntry struct {
	Command string `json:"command"`
	Usage   string `json:"usage"`
	Help    string `json:"help"`
}

func (c *command) entry() helpEntry { return helpEntry{c.name, c.synopsis(), c.help} }

func (s *session) help(args []string) (reply, error) {
	switch len(args) {
	case 0:
		var all []helpEntry
		for _, c := range commands {
			all = append(all, c.entry())
		}
		return reply{helpText(), all}, nil
	case 1:
		c := lookup(args[0])
		if c == nil || c.run == nil {
			return reply{}, &usageError{fmt.Sprintf("unknown command %q; try help", args[0])}
		}
		text := "usage: " + c.synopsis() + "\n  " + c.help
		if strings.Contains(" "+walletCommands+" ", " "+c.name+" ") {
			text += "\n  (uses the wallet chosen with usewallet or -rpcwallet, or the only one)"
		}
		return reply{text, c.entry()}, nil
	}
	return reply{}, &usageError{"usage: help [COMMAND]"}
}

// exec runs one command.
func (s *session) exec(args []string) (reply, error) {
	c := lookup(args[0])
	if c == nil || c.run == nil {
		return reply{}, &usageError{fmt.Sprintf("unknown command %q; try help", args[0])}
	}
	if c.args >= 0 && len(args)-1 != c.args {
		return reply{}, &usageError{"usage: " + c.synopsis()}
	}
	return c.run(s, args[1:])
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

func (s *session) getBlockCount([]string) (reply, error) {
	n, err := s.node.GetBlockCount(s.ctx)
	return reply{strconv.FormatInt(n, 10), n}, err
}

func (s *session) getBlock(args []string) (reply, error) {
	h, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return reply{}, fmt.Errorf("invalid height %q: want a whole number", args[0])
	}
	b, err := s.chain.GetBlock(s.ctx, h)
	if err != nil {
		return reply{}, err
	}
	out, err := json.MarshalIndent(b, "", "  ")
	return reply{string(out), b}, err
}

// generated is what generate prints with -json.
type generated struct {
	Blocks  []string `json:"blocks"`
	Address string   `json:"address"`
	Height  int64    `json:"height"`
}

func (s *session) generate(args []string) (reply, error) {
	n, err := parseCount(args[0])
	if err != nil {
		return reply{}, err
	}
	w, _, err := s.wallet()
	if err != nil {
		return reply{}, err
	}
	addr, err := w.GetNewAddress(s.ctx)
	if err != nil {
		return reply{}, err
	}
	hashes, err := s.mine(n, addr)
	if err != nil {
		return reply{}, err
	}
	tip, err := s.node.GetBlockCount(s.ctx)
	if err != nil {
		return reply{}, err
	}
	text := fmt.Sprintf("mined %s to %s; the tip is at height %d", plural(len(hashes), "block"), addr, tip)
	return reply{text, generated{hashes, addr, tip}}, nil
}

func (s *session) generateToAddress(args []string) (reply, error) {
	n, err := parseCount(args[0])
	if err != nil {
		return reply{}, err
	}
	hashes, err := s.mine(n, args[1])
	return reply{strings.Join(hashes, "\n"), nonNil(hashes)}, err
}

// createdWallet is what createwallet prints with -json.
type createdWallet struct {
	Name  string `json:"name"`
	InUse bool   `json:"inUse"`
}

func (s *session) createWallet(args []string) (reply, error) {
	l, err := s.walletLoader()
	if err != nil {
		return reply{}, err
	}
	w, err := l.CreateWallet(s.ctx, args[0])
	if err != nil {
		return reply{}, err
	}
	if _, err := s.subscribe(args[0], w); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == "" {
		s.current = args[0]
		return reply{fmt.Sprintf("created wallet %s (in use)", args[0]), createdWallet{args[0], true}}, nil
	}
	return reply{"created wallet " + args[0], createdWallet{args[0], s.current == args[0]}}, nil
}

func (s *session) listWallets([]string) (reply, error) {
	l, err := s.walletLoader()
	if err != nil {
		return reply{}, err
	}
	names, err := l.ListWallets(s.ctx)
	if err != nil {
		return reply{}, err
	}
	if len(names) == 0 {
		return reply{"(no wallets)", []string{}}, nil
	}
	return reply{strings.Join(names, "\n"), names}, nil
}

func (s *session) useWallet(args []string) (reply, error) {
	if _, err := s.open(args[0]); err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	s.current = args[0]
	s.mu.Unlock()
	return reply{"using wallet " + args[0], map[string]string{"name": args[0]}}, nil
}

func (s *session) getNewAddress([]string) (reply, error) {
	w, _, err := s.wallet()
	if err != nil {
		return reply{}, err
	}
	addr, err := w.GetNewAddress(s.ctx)
	return textReply(addr), err
}

func (s *session) getBalance([]string) (reply, error) {
	w, _, err := s.wallet()
	if err != nil {
		return reply{}, err
	}
	n, err := w.GetBalance(s.ctx)
	return reply{strconv.FormatInt(n, 10), n}, err
}

// balances returns every wallet's balance, in name order.
func (s *session) balances() ([]string, map[string]int64, error) {
	l, err := s.walletLoader()
	if err != nil {
		return nil, nil, err
	}
	names, err := l.ListWallets(s.ctx)
	if err != nil {
		return nil, nil, err
	}
	bal := map[string]int64{}
	for _, n := range names {
		w, err := s.open(n)
		if err != nil {
			return nil, nil, err
		}
		if bal[n], err = w.GetBalance(s.ctx); err != nil {
			return nil, nil, err
		}
	}
	return names, bal, nil
}

func balancesText(names []string, bal map[string]int64) string {
	if len(names) == 0 {
		return "(no wallets)"
	}
	var lines []string
	for _, n := range names {
		lines = append(lines, fmt.Sprintf("%s %d", n, bal[n]))
	}
	return strings.Join(lines, "\n")
}

func (s *session) getBalances([]string) (reply, error) {
	names, bal, err := s.balances()
	if err != nil {
		return reply{}, err
	}
	return reply{balancesText(names, bal), bal}, nil
}

func (s *session) isSpendable(args []string) (reply, error) {
	w, _, err := s.wallet()
	if err != nil {
		return reply{}, err
	}
	ok, err := w.IsSpendable(s.ctx, args[0])
	return reply{strconv.FormatBool(ok), ok}, err
}

func (s *session) sendToAddress(args []string) (reply, error) {
	amount, err := parseAmount(args[1])
	if err != nil {
		return reply{}, err
	}
	w, _, err := s.wallet()
	if err != nil {
		return reply{}, err
	}
	txid, err := w.SendToAddress(s.ctx, args[0], amount)
	return textReply(txid), err
}

func (s *session) listTransactions([]string) (reply, error) {
	w, _, err := s.wallet()
	if err != nil {
		return reply{}, err
	}
	entries, err := w.ListTransactions(s.ctx)
	if err != nil {
		return reply{}, err
	}
	if len(entries) == 0 {
		return reply{"(no transactions)", []wallet.Entry{}}, nil
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
	return reply{b.String(), entries}, nil
}

// statusValue is what status prints with -json.
type statusValue struct {
	Height      int64            `json:"height"`
	Wallets     map[string]int64 `json:"wallets"`
	WalletError string           `json:"walletError,omitempty"`
}

func (s *session) status([]string) (reply, error) {
	h, err := s.node.GetBlockCount(s.ctx)
	if err != nil {
		return reply{}, err
	}
	v := statusValue{Height: h, Wallets: map[string]int64{}}
	out := fmt.Sprintf("height %d", h)
	if _, err := s.walletLoader(); err == nil {
		names, bal, err := s.balances()
		if err != nil {
			return reply{}, err
		}
		v.Wallets = bal
		out += "\n" + balancesText(names, bal)
	} else {
		v.WalletError = errText(err)
		out += "\n" + v.WalletError
	}
	return reply{out, v}, nil
}

// nonNil makes a nil list print as [] rather than null.
func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
