package bridge

// SerialQueues reports how many serial objects have a queue on c (tests).
func SerialQueues(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.st.serials)
}

// CheckRole reports a broken invariant of c's reading role (read.go).
func CheckRole(c *Conn) error { return c.checkRole() }

// SelfRead reports how many answers on c were read by their own caller.
func SelfRead(c *Conn) int64 { return c.selfRead.Load() }

// QueuedWrites reports how many messages on c wait for the holder of the
// write lock (writer.go).
func QueuedWrites(c *Conn) int {
	c.fw.cmu.Lock()
	defer c.fw.cmu.Unlock()
	return len(c.fw.pend)
}
