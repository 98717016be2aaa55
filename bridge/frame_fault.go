package bridge

import "fmt"

// frameFault answers a message that the framing skipped. A syntax fault
// is a parse error, anything else an invalid request, both with id null;
// except that an answer too large to take fails the call that waits for
// it (CodeLimit) rather than leave it waiting.
func (c *Conn) frameFault(fe *FrameError) {
	if fe.Kind == FrameTooLarge && fe.Answer && fe.ID != nil {
		c.failPendingWith(fe.ID, &Error{Code: CodeLimit, Message: fmt.Sprintf("limit reached: the answer from %s exceeds the %d-byte message limit", c.opts.Name, c.opts.MaxMessageSize)})
		return
	}
	e := &Error{Code: CodeInvalidRequest, Message: "invalid request: " + fe.Msg}
	if fe.Kind == FrameSyntax {
		e = &Error{Code: CodeParseError, Message: "parse error: " + fe.Msg}
	}
	c.badInput(e.Message, fe.Input)
	c.reply(appendErrorResponse(nil, nil, e))
}
