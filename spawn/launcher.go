package spawn

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/shlex"
)

// Command is a command line as separate words, such as a launcher
// (Options.Launcher). As a flag.Value it is set from one string split into
// words the way a POSIX shell splits them (quotes and backslashes, no
// expansion), so that a flag can take -wallet-launcher='ssh -p 2222 host';
// String quotes the words back into one such string.
type Command []string

// Set splits s into words as a shell would and replaces c with them. An
// empty s, or one of only white space, leaves no words; an unclosed quote is
// an error.
func (c *Command) Set(s string) error {
	words, err := shlex.Split(s)
	if err != nil {
		return fmt.Errorf("bad command line %q: %w", s, err)
	}
	*c = words
	return nil
}

// String returns the words quoted for a POSIX shell and joined by spaces;
// splitting it again (Set, or the shell) gives back the same words.
func (c Command) String() string { return shellJoin(c) }

// shellJoin quotes each word for a POSIX shell and joins them with spaces.
func shellJoin(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	return strings.Join(quoted, " ")
}

// shellQuote returns w as one POSIX shell word: unchanged if it holds only
// characters no shell treats specially, otherwise in single quotes, inside
// which nothing is special; a single quote itself ends the quoting, is
// added escaped with a backslash, and the quoting starts again.
func shellQuote(w string) string {
	if w == "" {
		return "''"
	}
	if strings.IndexFunc(w, func(r rune) bool { return !safeInShell(r) }) < 0 {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// safeInShell reports whether r needs no quoting anywhere in a word.
func safeInShell(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("_-+=/.,:@%", r)
}

// launchLine returns the command line that runs argv through launcher, the
// launcher's program name (the base name of the word that decides how argv
// is passed), and a short name for where the child runs.
//
// ssh joins the words after the destination into one string that the remote
// user's shell parses, so when the launcher is ssh (see sshWord) argv is
// quoted into one shell command line, and -T is put right after ssh so that no terminal is allocated
// even if the user's ssh configuration asks for one (a later -t in the
// launcher still wins). Any other launcher (docker exec, kubectl exec, env,
// sudo) gets argv as separate words.
func launchLine(launcher, argv []string) (line []string, via, where string, err error) {
	if len(launcher) == 0 || launcher[0] == "" {
		return nil, "", "", errors.New("spawn: empty launcher")
	}
	if i := sshWord(launcher); i >= 0 {
		line = append(line, launcher[:i+1]...)
		line = append(line, "-T")
		line = append(line, launcher[i+1:]...)
		line = append(line, shellJoin(argv))
		where = sshDestination(launcher[i+1:])
		if where == "" {
			where = "ssh"
		}
		return line, "ssh", where, nil
	}
	line = append(append(line, launcher...), argv...)
	via = filepath.Base(launcher[0])
	where = via
	for _, w := range launcher[1:] {
		if w != "" && !strings.HasPrefix(w, "-") {
			where = w
		}
	}
	return line, via, where, nil
}

// wrappers are programs that run the command line after their own options,
// so that ssh may follow them in a launcher.
var wrappers = []string{"sshpass", "sudo", "doas", "env", "nice", "nohup", "timeout", "setsid", "stdbuf", "ionice", "taskset", "chrt"}

// sshWord returns the index of ssh in launcher: 0 if the launcher's program
// is ssh, the first word named ssh if the program is a wrapper (sshpass -p
// pw ssh host, sudo -u bob ssh host), or -1. A word ssh elsewhere (a
// container named ssh in docker exec -i ssh) does not count.
func sshWord(launcher []string) int {
	if filepath.Base(launcher[0]) == "ssh" {
		return 0
	}
	if !slices.Contains(wrappers, filepath.Base(launcher[0])) {
		return -1
	}
	for i, w := range launcher[1:] {
		if filepath.Base(w) == "ssh" {
			return i + 1
		}
	}
	return -1
}

// sshOptionsWithArg are the ssh options that take an argument (from ssh's
// getopt string in OpenSSH 9).
const sshOptionsWithArg = "BbcDEeFIiJLlmOopQRSWw"

// sshDestination returns the host that ssh's arguments connect to: the first
// word that is neither an option nor an option's argument, without a user@
// part, an ssh:// scheme or a :port. It returns "" if there is none.
func sshDestination(args []string) string {
	for i := 0; i < len(args); i++ {
		w := args[i]
		if w == "--" {
			if i+1 < len(args) {
				return hostOf(args[i+1])
			}
			return ""
		}
		if len(w) < 2 || w[0] != '-' {
			return hostOf(w)
		}
		for j := 1; j < len(w); j++ {
			if strings.IndexByte(sshOptionsWithArg, w[j]) >= 0 {
				if j == len(w)-1 {
					i++ // the argument is the next word
				}
				break
			}
		}
	}
	return ""
}

// hostOf strips an ssh destination down to its host.
func hostOf(dest string) string {
	if rest, ok := strings.CutPrefix(dest, "ssh://"); ok {
		dest = rest
		if i := strings.LastIndexByte(dest, ':'); i >= 0 && !strings.Contains(dest[i:], "]") {
			dest = dest[:i]
		}
	}
	if i := strings.LastIndexByte(dest, '@'); i >= 0 {
		dest = dest[i+1:]
	}
	return strings.Trim(dest, "[]")
}
