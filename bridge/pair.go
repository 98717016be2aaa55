package bridge

// Pair connects two connections to each other in memory, a with options a
// and b with options b (nil means defaults), over the two ends of a Pipe
// (NewChannel): what one sends, the other receives. Usually one of them
// serves a bootstrap object and the other calls it. Pair is for tests and
// examples, and for splitting a program's parts without a process in
// between; closing either end ends both. The Pipe queues without bound,
// so Options.MaxQueued holds nothing back between the two.
func Pair(a, b *Options) (*Conn, *Conn) {
	ca, cb := Pipe(0)
	return NewChannel(ca, a), NewChannel(cb, b)
}
