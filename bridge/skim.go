package bridge

import "bytes"

// skimmer follows a message that is being skipped as too large, a chunk
// at a time and without keeping it: it finds where the value ends, and,
// for an object, its top-level "id" and whether it has "method",
// "result" or "error" members.
//
// The end of a value is its closing bracket or quote, or for a number or
// literal the first byte that cannot belong to it. A value too broken to
// follow ends early: at a line end inside a string, or where a line
// starts with '{' or '[' though the value cannot continue with one (the
// start of the next message; the same rule as Stream's recovery).
type skimmer struct {
	started bool
	done    bool
	broken  bool // ended by one of the rules for broken values
	depth   int
	scalar  bool
	inStr   bool
	esc     bool
	object  bool // the value is an object (else no id is looked for)
	// lineStart: only white space since the last line end (depth > 0).
	lineStart bool
	lastSig   byte // the last byte outside strings that is not white space

	expectKey bool   // at depth 1, the next string is a member name
	inKey     bool   // reading a member name
	key       []byte // the member name being read (short names only)
	member    string // the depth-1 member whose value comes next
	inID      bool   // reading the value of "id"
	id        []byte
	idDone    bool
	method    bool
	answer    bool // has "result" or "error"
}

// maxSkimID bounds the id kept from a skipped message.
const maxSkimID = 256

// feed follows b and returns how many of its bytes belong to the value;
// n < len(b) means the value ended there (k.done).
func (k *skimmer) feed(b []byte) (n int) {
	for i := 0; i < len(b); i++ {
		if k.done {
			return i
		}
		if k.inStr && !k.esc && !k.inKey && !k.inID {
			// Jump over plain string bytes (assembly, and fast under
			// the race detector too).
			rest := b[i:]
			q := bytes.IndexByte(rest, '"')
			if q < 0 {
				q = len(rest)
			}
			if e := bytes.IndexByte(rest[:q], '\\'); e >= 0 {
				q = e
			}
			if e := bytes.IndexByte(rest[:q], '\n'); e >= 0 {
				q = e
			}
			if i += q; i == len(b) {
				break
			}
		}
		c := b[i]
		if !k.started {
			if isSpace(c) {
				continue
			}
			k.started = true
			switch c {
			case '{':
				k.depth, k.object, k.expectKey, k.lastSig = 1, true, true, c
			case '[':
				k.depth, k.lastSig = 1, c
			case '"':
				k.inStr = true
			default:
				k.scalar = true
			}
			continue
		}
		if k.scalar {
			if isSpace(c) || bytes.IndexByte([]byte(`{}[]",:`), c) >= 0 {
				k.done = true
				return i
			}
			continue
		}
		if k.inID {
			// The id's value: everything up to the ',' or '}' that ends
			// it at depth 1.
			if !k.inStr && k.depth == 1 && (c == ',' || c == '}') {
				k.inID, k.idDone = false, true
				k.id = bytes.TrimSpace(k.id)
			} else if len(k.id) < maxSkimID {
				k.id = append(k.id, c)
			} else {
				k.inID, k.id = false, nil
			}
		}
		if k.inStr {
			switch {
			case k.esc:
				k.esc = false
			case c == '\\':
				k.esc = true
			case c == '\n':
				// Not JSON: the broken value ends with its line.
				k.done, k.broken, k.object = true, true, false
				return i + 1
			case c == '"':
				k.inStr = false
				k.lastSig = c
				if k.inKey {
					k.inKey = false
					k.member = string(k.key)
				}
				if k.depth == 0 {
					k.done = true
					return i + 1
				}
				continue
			}
			if k.inKey && len(k.key) < 16 {
				k.key = append(k.key, c)
			}
			continue
		}
		if c == '\n' {
			k.lineStart = true
			continue
		}
		if isSpace(c) {
			continue
		}
		if k.lineStart && (c == '{' || c == '[') && bytes.IndexByte([]byte(",:[{"), k.lastSig) < 0 {
			// A new message begins where this one cannot go on.
			k.done, k.broken, k.object = true, true, false
			return i
		}
		k.lineStart = false
		k.lastSig = c
		switch c {
		case '"':
			k.inStr = true
			if k.depth == 1 && k.expectKey {
				k.inKey, k.expectKey, k.key = true, false, k.key[:0]
			}
		case ':':
			if k.depth == 1 {
				switch k.member {
				case "id":
					k.inID, k.id = !k.idDone, nil
				case "method":
					k.method = true
				case "result", "error":
					k.answer = true
				}
			}
		case ',':
			if k.depth == 1 {
				k.expectKey = true
			}
		case '{', '[':
			k.depth++
		case '}', ']':
			k.depth--
			if k.depth == 0 {
				k.done = true
				return i + 1
			}
		}
	}
	return len(b)
}

// complete reports whether the skipped value was an object whose end was
// seen.
func (k *skimmer) complete() bool { return k.done && k.object && k.depth == 0 }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
