package conformance

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The built-in cases, one file per group, named after the contract
// section they pin.
//
//go:embed cases/*.json
var caseFiles embed.FS

// Levels of cases: protocol cases use only what every endpoint serves
// (rpc.discover, rpc.handles, release, cancel and unknown methods); test
// cases need the test interface described in README.md.
const (
	LevelProtocol = "protocol"
	LevelTest     = "test"
)

// caseFile is the layout of one file in cases/.
type caseFile struct {
	// Section is the contract section the file's cases pin by default.
	Section string `json:"section"`
	// Title names the group.
	Title string `json:"title"`
	// Needs is the default level of the file's cases.
	Needs string  `json:"needs"`
	Cases []*Case `json:"cases"`
}

// Case is one scripted conversation with a fresh child.
type Case struct {
	// Name starts with a short unique code, e.g. "W3 parse error recovers".
	Name string `json:"name"`
	// Section is the contract section, e.g. "1" or "3".
	Section string `json:"section,omitempty"`
	// Pins quotes or paraphrases the contract point the case checks.
	Pins string `json:"pins"`
	// Needs is LevelProtocol or LevelTest.
	Needs string `json:"needs,omitempty"`
	// KnownBug, if set, makes a failure count as an expected failure.
	KnownBug string `json:"knownBug,omitempty"`
	// Steps are run in order.
	Steps []*Step `json:"steps"`

	// File is the case file the case came from.
	File string `json:"-"`
	// Group is the title of that file.
	Group string `json:"-"`
}

// Step is one action or expectation. Exactly one of the action fields is
// set; the others modify it.
type Step struct {
	// Send writes a JSON value as one compact line. Scalars keep their
	// text as written in the case file; "${name}" strings are replaced by
	// captured values.
	Send jsontext.Value `json:"send,omitzero"`
	// SendRaw writes text exactly (after ${name} interpolation).
	SendRaw *string `json:"sendRaw,omitempty"`
	// SendLSP writes a JSON value with LSP framing (Content-Length counts
	// bytes); SendLSPRaw writes text as the body of an LSP frame.
	SendLSP    jsontext.Value `json:"sendLSP,omitzero"`
	SendLSPRaw *string        `json:"sendLSPRaw,omitempty"`
	// Expect reads the next message and matches it against a pattern.
	Expect jsontext.Value `json:"expect,omitzero"`
	// ExpectLine reads the next message and compares its bytes exactly.
	ExpectLine *string `json:"expectLine,omitempty"`
	// ExpectAll reads as many messages as patterns and matches them in any
	// order (concurrent replies).
	ExpectAll []jsontext.Value `json:"expectAll,omitempty"`
	// Unordered is like ExpectAll but takes expect and serve steps.
	Unordered []*Step `json:"unordered,omitempty"`
	// Serve reads a request from the child matching the pattern and
	// answers it with Result (default null) or Error.
	Serve jsontext.Value `json:"serve,omitzero"`
	// ExpectNone checks that nothing arrives for this many milliseconds.
	ExpectNone *int `json:"expectNone,omitempty"`
	// ExpectClosed checks that the child closes its output (after any
	// messages already sent would be unexpected).
	ExpectClosed bool `json:"expectClosed,omitempty"`
	// ExpectExit waits for the child to exit with this status.
	ExpectExit *int `json:"expectExit,omitempty"`
	// CloseInput closes the child's standard input.
	CloseInput bool `json:"closeInput,omitempty"`
	// Sleep pauses for this many milliseconds.
	Sleep *int `json:"sleep,omitempty"`

	// Result and Error are the reply of a Serve step.
	Result jsontext.Value `json:"result,omitzero"`
	Error  jsontext.Value `json:"error,omitzero"`
	// Latin1 sends each character U+0000..U+00FF of a raw text as one
	// byte, to send invalid UTF-8.
	Latin1 bool `json:"latin1,omitempty"`
	// Chunk writes a send in pieces of this many bytes, PauseMs apart
	// (default 2 ms).
	Chunk   int `json:"chunk,omitempty"`
	PauseMs int `json:"pauseMs,omitempty"`
	// PadTo replaces "${pad}" in a raw text with enough "x" characters to
	// make the message body exactly this many bytes long.
	PadTo int `json:"padTo,omitempty"`
	// Repeat replaces "${repeat}" in a raw text with Times copies of it
	// (deep nesting, long runs).
	Repeat string `json:"repeat,omitempty"`
	Times  int    `json:"times,omitempty"`
	// Headers are extra LSP header lines, e.g. "Content-Type: ...".
	Headers []string `json:"headers,omitempty"`
	// Framing, on an expectation, requires the message's framing: "lines"
	// or "lsp".
	Framing string `json:"framing,omitempty"`
	// Within overrides the time allowed for an expectation (ms).
	Within int `json:"within,omitempty"`
	// Allow lists patterns of messages an expectation skips if they come
	// first (behaviour the contract permits but does not require, such as
	// the child cancelling its own pending calls).
	Allow []jsontext.Value `json:"allow,omitempty"`
	// Note is a comment.
	Note string `json:"note,omitempty"`

	// Parsed patterns and templates.
	send, expect, serve, result, errv *node
	all, allow                        []*node
}

func (s *Step) kind() string {
	switch {
	case s.Send != nil:
		return "send"
	case s.SendRaw != nil:
		return "sendRaw"
	case s.SendLSP != nil:
		return "sendLSP"
	case s.SendLSPRaw != nil:
		return "sendLSPRaw"
	case s.Expect != nil:
		return "expect"
	case s.ExpectLine != nil:
		return "expectLine"
	case s.ExpectAll != nil:
		return "expectAll"
	case s.Unordered != nil:
		return "unordered"
	case s.Serve != nil:
		return "serve"
	case s.ExpectNone != nil:
		return "expectNone"
	case s.ExpectClosed:
		return "expectClosed"
	case s.ExpectExit != nil:
		return "expectExit"
	case s.CloseInput:
		return "closeInput"
	case s.Sleep != nil:
		return "sleep"
	}
	return ""
}

func (s *Step) actions() int {
	n := 0
	for _, b := range []bool{s.Send != nil, s.SendRaw != nil, s.SendLSP != nil, s.SendLSPRaw != nil,
		s.Expect != nil, s.ExpectLine != nil, s.ExpectAll != nil, s.Unordered != nil, s.Serve != nil,
		s.ExpectNone != nil, s.ExpectClosed, s.ExpectExit != nil, s.CloseInput, s.Sleep != nil} {
		if b {
			n++
		}
	}
	return n
}

var codeRE = regexp.MustCompile(`^[A-Z][0-9]+[a-z]? \S`)

// prepare checks a step and parses its patterns.
func (s *Step) prepare(nested bool) error {
	if n := s.actions(); n != 1 {
		return fmt.Errorf("a step needs exactly one action, has %d", n)
	}
	var err error
	parse := func(v jsontext.Value, strict bool) *node {
		if v == nil || err != nil {
			return nil
		}
		var n *node
		n, err = parseNode(v, strict)
		return n
	}
	s.send = parse(s.Send, false)
	if s.send == nil {
		s.send = parse(s.SendLSP, false)
	}
	s.expect = parse(s.Expect, true)
	s.serve = parse(s.Serve, true)
	s.result = parse(s.Result, false)
	s.errv = parse(s.Error, false)
	for _, v := range s.ExpectAll {
		s.all = append(s.all, parse(v, true))
	}
	for _, v := range s.Allow {
		s.allow = append(s.allow, parse(v, true))
	}
	if err != nil {
		return err
	}
	if nested && s.Expect == nil && s.Serve == nil {
		return fmt.Errorf("unordered takes only expect and serve steps")
	}
	if s.Allow != nil && s.Expect == nil && s.ExpectAll == nil && s.Unordered == nil && s.Serve == nil && s.ExpectNone == nil && !s.ExpectClosed && s.ExpectLine == nil {
		return fmt.Errorf("allow belongs to an expectation")
	}
	if (s.Result != nil || s.Error != nil) && s.Serve == nil {
		return fmt.Errorf("result and error belong to a serve step")
	}
	if s.Result != nil && s.Error != nil {
		return fmt.Errorf("a serve step answers with a result or an error, not both")
	}
	if s.Framing != "" && s.Framing != "lines" && s.Framing != "lsp" {
		return fmt.Errorf("framing must be lines or lsp")
	}
	for _, u := range s.Unordered {
		if err := u.prepare(true); err != nil {
			return err
		}
	}
	for _, p := range append(append([]*node{s.expect, s.serve}, s.all...), s.allow...) {
		if p != nil {
			if err := checkPattern(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPattern rejects objects that mix operators and plain members, a
// likely typo in a case.
func checkPattern(p *node) error {
	if p.kind == '{' && isOperator(p) {
		for _, k := range p.keys {
			if !operators[k] {
				return fmt.Errorf("pattern %s mixes operators and members", shorten(p.String(), 80))
			}
		}
	}
	for _, x := range append(append([]*node{}, p.vals...), p.elems...) {
		if err := checkPattern(x); err != nil {
			return err
		}
	}
	return nil
}

// Cases returns the built-in cases in file order.
func Cases() ([]*Case, error) {
	return LoadCases(caseFiles, "cases")
}

// LoadCases reads every *.json case file in dir of fsys.
func LoadCases(fsys fs.FS, dir string) ([]*Case, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Case
	seen := map[string]string{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		var f caseFile
		if err := json.Unmarshal(b, &f, json.RejectUnknownMembers(true), jsontext.AllowDuplicateNames(true)); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, c := range f.Cases {
			c.File = path.Base(name)
			c.Group = f.Title
			if c.Section == "" {
				c.Section = f.Section
			}
			if c.Needs == "" {
				c.Needs = f.Needs
			}
			if c.Needs == "" {
				c.Needs = LevelTest
			}
			if err := c.check(); err != nil {
				return nil, fmt.Errorf("%s: case %q: %w", name, c.Name, err)
			}
			code, _, _ := strings.Cut(c.Name, " ")
			if other, dup := seen[code]; dup {
				return nil, fmt.Errorf("%s: case %q reuses the code of %q", name, c.Name, other)
			}
			seen[code] = c.Name
			out = append(out, c)
		}
	}
	return out, nil
}

func (c *Case) check() error {
	if !codeRE.MatchString(c.Name) {
		return fmt.Errorf("name must start with a code such as W3 and a space")
	}
	if c.Pins == "" {
		return fmt.Errorf("pins is empty")
	}
	if c.Needs != LevelProtocol && c.Needs != LevelTest {
		return fmt.Errorf("needs must be %q or %q", LevelProtocol, LevelTest)
	}
	if len(c.Steps) == 0 {
		return fmt.Errorf("no steps")
	}
	for i, s := range c.Steps {
		if err := s.prepare(false); err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
	}
	return nil
}
