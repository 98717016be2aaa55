package bridge_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
)

// TestProtocolDoc replays the transcripts of docs/PROTOCOL.md against the
// test service, so the document cannot drift from the code.
func TestProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := transcripts(string(doc))
	if len(blocks) < 5 {
		t.Fatalf("found %d transcripts", len(blocks))
	}
	for i, b := range blocks {
		t.Run("", func(t *testing.T) {
			// In a synctest bubble, so expectNone's 20 ms at the end pass
			// only while the server waits: a slow machine cannot make a
			// message late enough to slip past it.
			synctest.Test(t, func(t *testing.T) {
				w := newWire(t, nil)
				bound := map[string]string{}
				for _, line := range b {
					dir, text, _ := strings.Cut(line, " ")
					switch dir {
					case "->":
						w.send(substitute(text, bound) + "\n")
					case "<-":
						got := strings.TrimSuffix(w.recv(), "\n")
						want := bindIDs(t, text, got, bound)
						if got != want {
							t.Fatalf("transcript %d:\n got: %s\nwant: %s", i+1, got, want)
						}
					default:
						t.Fatalf("transcript %d: bad line %q", i+1, line)
					}
				}
				w.expectNone(20e6)
			})
		})
	}
}

var handleID = regexp.MustCompile(`\bs\d+\.[0-9a-f]{16}\b`)

// bindIDs binds the handle ids named in want to the ones in got, in order,
// and returns want with them substituted.
func bindIDs(t *testing.T, want, got string, bound map[string]string) string {
	names := handleID.FindAllString(want, -1)
	actual := handleID.FindAllString(got, -1)
	for i, n := range names {
		if _, ok := bound[n]; !ok && i < len(actual) {
			bound[n] = actual[i]
		}
	}
	return substitute(want, bound)
}

func substitute(s string, bound map[string]string) string {
	return handleID.ReplaceAllStringFunc(s, func(n string) string {
		if v, ok := bound[n]; ok {
			return v
		}
		return n
	})
}

func transcripts(doc string) [][]string {
	var out [][]string
	var cur []string
	in := false
	for _, l := range strings.Split(doc, "\n") {
		switch {
		case strings.HasPrefix(l, "```transcript"):
			in, cur = true, nil
		case in && strings.HasPrefix(l, "```"):
			in = false
			out = append(out, cur)
		case in && l != "":
			cur = append(cur, l)
		}
	}
	return out
}
