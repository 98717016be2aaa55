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
