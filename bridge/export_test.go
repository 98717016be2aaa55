package bridge

// SerialQueues reports how many serial objects have a queue on c (tests).
func SerialQueues(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.st.serials)
}
