package bridge

// Framing says how messages are delimited on a byte stream.
type Framing int32

const (
	// FramingAuto detects the framing from the first bytes received and
	// answers in kind; until something is received it writes lines.
	FramingAuto Framing = iota
	// FramingLines is newline-delimited JSON: one compact value per line.
	FramingLines
	// FramingLSP is the Language Server Protocol base framing:
	// "Content-Length: N\r\n\r\n" followed by N bytes.
	FramingLSP
)

func (f Framing) String() string {
	switch f {
	case FramingLines:
		return "lines"
	case FramingLSP:
		return "lsp"
	}
	return "auto"
}
