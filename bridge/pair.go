package bridge

import "io"

// Pair connects two connections to each other in memory, a with options a
// and b with options b (nil means defaults): what one writes, the other
// reads. Usually one of them serves a bootstrap object and the other calls
// it. Pair is for tests and examples, and for splitting a program's parts
// without a process in between; closing either end ends both.
func Pair(a, b *Options) (*Conn, *Conn) {
	abR, abW := io.Pipe()
	baR, baW := io.Pipe()
	return New(baR, abW, a), New(abR, baW, b)
}
