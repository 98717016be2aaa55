package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/chzyer/readline"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressMin is the number of blocks from which generate shows a
// progress bar on a terminal.
const progressMin = 20

// isTerminal reports whether f is a terminal (not merely a character
// device such as /dev/null).
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// mine mines n blocks to addr. On a terminal, for many blocks, it shows a
// progress bar on s.progress that the block notifications advance; the
// notifications' own lines are not printed meanwhile.
func (s *session) mine(n int, addr string) ([]string, error) {
	if s.progress == nil || n < progressMin {
		return s.node.GenerateToAddress(s.ctx, n, addr)
	}
	bar := progressbar.NewOptions(n,
		progressbar.OptionSetWriter(s.progress),
		progressbar.OptionSetDescription("mining"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionClearOnFinish(),
	)
	s.mu.Lock()
	s.bar = bar
	s.mu.Unlock()
	hashes, err := s.node.GenerateToAddress(s.ctx, n, addr)
	s.mu.Lock()
	s.bar = nil
	s.mu.Unlock()
	if err != nil {
		bar.Exit()
		fmt.Fprintln(s.progress)
	} else {
		bar.Finish()
	}
	return hashes, err
}

// tick advances the progress bar for a block connected, and reports
// whether one is shown (and so the notification's line is not printed).
func (s *session) tick(blocks int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bar == nil {
		return false
	}
	s.bar.Add(blocks)
	return true
}

// mining reports whether a progress bar is shown.
func (s *session) mining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bar != nil
}

// interactive reads commands until end of input or "quit". On a terminal
// it edits lines with readline (history with the arrow keys, completion
// of command names with Tab) and always exits 0; reading a pipe, it exits
// 1 if a command failed, as -script does.
func (s *session) interactive(stdin io.Reader, terminal bool, stderr io.Writer) int {
	if terminal {
		return s.terminal(stderr)
	}
	bad := 0
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "quit" || line == "exit" {
			break
		}
		if !s.line(line, false) {
			bad++
		}
	}
	if err := sc.Err(); err != nil {
		s.fail(fmt.Errorf("reading the input: %w", err))
		bad++
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "mpgui: %d command(s) did not go as expected\n", bad)
		return 1
	}
	return 0
}

// terminal runs the prompt on a terminal with readline.
func (s *session) terminal(stderr io.Writer) int {
	var items []readline.PrefixCompleterInterface
	for _, c := range commands {
		items = append(items, readline.PcItem(c.name))
	}
	items = append(items, readline.PcItem("quit"))
	rl, err := readline.NewEx(&readline.Config{
		AutoComplete:    readline.NewPrefixCompleter(items...),
		HistoryLimit:    1000,
		InterruptPrompt: "^C",
		EOFPrompt:       "quit",
	})
	if err != nil {
		fmt.Fprintln(stderr, "mpgui:", err)
		return 1
	}
	defer rl.Close()
	// Notifications arriving while a line is edited are printed above
	// it, and the line is drawn again.
	restore := s.out.redirect(rl.Stdout())
	defer restore()
	s.out.printf("type help for the commands, quit to leave\n")
	for {
		rl.SetPrompt(s.prompt() + "> ")
		line, err := rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			continue // Ctrl-C drops the line being edited
		case err != nil:
			return 0 // Ctrl-D or end of input
		}
		line = strings.TrimSpace(line)
		if line == "quit" || line == "exit" {
			return 0
		}
		s.line(line, false)
	}
}
