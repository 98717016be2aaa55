package main

// Tests of mpgui as a command-line tool: help, -json, exit statuses, the
// refusal of wallet commands without a wallet, and the terminal (line
// editing, history, the progress bar) through a pseudo-terminal.

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestNoWalletRefused: a wallet command with no wallet loaded is refused
// with a hint, and no wallet is created behind the user's back.
func TestNoWalletRefused(t *testing.T) {
	out, errOut, code := gui(t, "getbalance\ngetnewaddress\nlistwallets\n")
	if code != 1 || strings.Count(out, "error: no wallet loaded: use 'createwallet NAME'") != 2 ||
		!strings.Contains(out, "(no wallets)") || strings.Contains(out, "created") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	_, errOut, code = gui(t, "", "generate", "1")
	if code != 1 || !strings.Contains(errOut, "error: no wallet loaded") {
		t.Errorf("mpgui generate 1: exit %d, %q", code, errOut)
	}
}

// TestPipedExitStatus: commands piped in exit non-zero when one failed,
// as -script does; expected failures ("!") do not count.
func TestPipedExitStatus(t *testing.T) {
	for _, c := range []struct {
		in   string
		code int
	}{
		{"getblockcount\nfrobnicate\ngetblockcount\n", 1},
		{"getblockcount\ngetblock 5\n", 1},
		{"getblockcount\n! getblock 5\n", 0},
		{"getblockcount\nquit\nfrobnicate\n", 0}, // nothing is read after quit
		{"", 0},
	} {
		out, errOut, code := gui(t, c.in)
		if code != c.code {
			t.Errorf("%q: exit %d, want %d\n%s\n%s", c.in, code, c.code, out, errOut)
		}
		if c.code != 0 && !strings.Contains(errOut, "1 command(s) did not go as expected") {
			t.Errorf("%q: stderr %q", c.in, errOut)
		}
	}
}

// TestHelpCommand: help lists every command; help CMD tells one.
func TestHelpCommand(t *testing.T) {
	out, _, code := gui(t, "", "help")
	if code != 0 || !strings.Contains(out, "help [COMMAND]") || !strings.Contains(out, "sendtoaddress ADDRESS AMOUNT") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
	out, _, code = gui(t, "", "help", "getblock")
	if code != 0 || out != "usage: getblock HEIGHT\n  the block at HEIGHT, as JSON\n" {
		t.Errorf("help getblock: exit %d %q", code, out)
	}
	out, _, _ = gui(t, "", "help", "getbalance")
	if !strings.Contains(out, "uses the wallet chosen") {
		t.Errorf("help getbalance: %q", out)
	}
}

// TestJSONMode: with -json every command prints one JSON value on a
// line, errors go to stderr, and nothing else reaches stdout.
func TestJSONMode(t *testing.T) {
	out, errOut, code := gui(t, "", "-json", "listwallets")
	if code != 0 || out != "[]\n" {
		t.Errorf("-json listwallets: exit %d %q %q", code, out, errOut)
	}
	out, errOut, code = gui(t, "", "-json", "getbalance")
	if code != 1 || out != "" || !strings.Contains(errOut, "no wallet loaded") {
		t.Errorf("-json getbalance: exit %d %q %q", code, out, errOut)
	}
	script := "# a comment\ncreatewallet alice\na = getnewaddress\ngenerate 2\n" +
		"getblockcount\ngetbalance\ngetbalances\nisspendable $a\nlisttransactions\n" +
		"status\nhelp getblock\ngetblock 1\n! getblock 9\ngeneratetoaddress 1 $a\n"
	out, errOut, code = gui(t, "", "-json", "-script", writeFile(t, script))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var values []any
	for _, l := range lines {
		var v any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("stdout line %q is not JSON: %v\n%s", l, err, out)
		}
		values = append(values, v)
	}
	if len(values) != 12 {
		t.Fatalf("%d values for 12 commands:\n%s", len(values), out)
	}
	addr, _ := values[1].(string)
	gen, _ := values[2].(map[string]any)
	txs, _ := values[7].([]any)
	status, _ := values[8].(map[string]any)
	block, _ := values[10].(map[string]any)
	hashes, _ := values[11].([]any)
	checks := []struct {
		what string
		ok   bool
	}{
		{"createwallet", jsonEq(values[0], `{"name":"alice","inUse":true}`)},
		{"getnewaddress", regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(addr)},
		{"generate", gen["address"] != "" && gen["height"] == 2.0 && len(gen["blocks"].([]any)) == 2},
		{"getblockcount", values[3] == 2.0},
		{"getbalance", values[4] == 10000000000.0},
		{"getbalances", jsonEq(values[5], `{"alice":10000000000}`)},
		{"isspendable", values[6] == true},
		{"listtransactions", len(txs) == 2},
		{"status", jsonEq(status["wallets"], `{"alice":10000000000}`) && status["height"] == 2.0},
		{"help getblock", jsonEq(values[9], `{"command":"getblock","usage":"getblock HEIGHT","help":"the block at HEIGHT, as JSON"}`)},
		{"getblock", block["height"] == 1.0},
		{"generatetoaddress", len(hashes) == 1},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: unexpected value in\n%s", c.what, out)
		}
	}
	if !strings.Contains(errOut, "error: block height 9 out of range") {
		t.Errorf("the expected error is not on stderr: %q", errOut)
	}
}

// jsonEq reports whether v is the JSON value text.
func jsonEq(v any, text string) bool {
	a, _ := json.Marshal(v)
	var w any
	if json.Unmarshal([]byte(text), &w) != nil {
		return false
	}
	b, _ := json.Marshal(w)
	return bytes.Equal(a, b)
}

// screen collects what a program writes to its terminal.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the screen, from offset from, matches re, and
// returns the offset after the match.
func (s *screen) waitFor(t *testing.T, from int, re string) int {
	t.Helper()
	r := regexp.MustCompile(re)
	deadline := time.Now().Add(time.Minute)
	for {
		if all := s.String(); from <= len(all) {
			if loc := r.FindStringIndex(all[from:]); loc != nil {
				return from + loc[1]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for /%s/; the screen shows:\n%q", re, s.String()[from:])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTerminal drives mpgui's prompt through a pseudo-terminal: a line
// is edited before it runs, the up arrow brings back the last command,
// and generate shows a progress bar instead of a line per block.
func TestTerminal(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir, "mpgui"))
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	var scr screen
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(&scr, tty) // ends with an error when the child has gone
	}()
	var waitErr error
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitErr = cmd.Wait()
	}()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		tty.Close()
		<-copied
	}()
	typeIn := func(s string) {
		if _, err := tty.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}

	at := scr.waitFor(t, 0, `type help for the commands`)
	at = scr.waitFor(t, at, `\[height 0\] > `)
	// A typo mended with Backspace runs as the mended command.
	typeIn("getblockcoux\x7fnt\r")
	at = scr.waitFor(t, at, `\r\n0\r\n`)
	at = scr.waitFor(t, at, `\] > `)
	typeIn("createwallet w\r")
	at = scr.waitFor(t, at, `created wallet w \(in use\)`)
	at = scr.waitFor(t, at, `\] > `)
	// The up arrow brings back createwallet w, which now fails.
	typeIn("\x1b[A\r")
	at = scr.waitFor(t, at, `wallet "w" already exists`)
	at = scr.waitFor(t, at, `\] > `)
	typeIn("generate 40\r")
	mined := scr.waitFor(t, at, `mined 40 blocks`)
	during := scr.String()[at:mined]
	if !strings.Contains(during, "mining") || !strings.Contains(during, "/40") {
		t.Errorf("no progress bar while mining:\n%q", during)
	}
	if strings.Contains(during, "* block 20 ") {
		t.Errorf("a line per block while the progress bar shows:\n%q", during)
	}
	at = scr.waitFor(t, mined, `\[height 40 \| w 200000000000\] > `)
	typeIn("quit\r")
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("mpgui exit: %v\n%q", waitErr, scr.String()[at:])
		}
	case <-time.After(time.Minute):
		t.Fatalf("mpgui did not quit:\n%q", scr.String()[at:])
	}
}
