package bridge

import "sync"

// queued is one entry of the notification queue: a notification to run in
// order, other work to run in order (the Close of an object the peer
// released), or a request to start once the entries before it have run.
type queued struct {
	notify *serverCall
	run    func()
	start  func()
}

// queue runs notifications one at a time in arrival order, with the
// Closes of released objects in their place among them. Requests that
// arrive while the queue is busy wait behind it, except while any call of
// ours waits for the peer: then they start at once, since the answer may
// need them (a notification handler that calls the peer, with whatever
// context, must not wait for requests queued behind itself).
type queue struct {
	conn    *Conn
	mu      sync.Mutex
	items   []queued
	running bool
	blocked int
}

func (q *queue) push(it queued) {
	q.mu.Lock()
	if it.start != nil && (q.blocked > 0 || (!q.running && len(q.items) == 0)) {
		q.mu.Unlock()
		it.start()
		return
	}
	q.items = append(q.items, it)
	if !q.running {
		q.running = true
		go q.work()
	}
	q.mu.Unlock()
}

func (q *queue) work() {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		it := q.items[0]
		q.items[0] = queued{}
		q.items = q.items[1:]
		q.mu.Unlock()
		switch {
		case it.start != nil:
			it.start()
		case it.run != nil:
			it.run()
		default:
			it.notify.run()
		}
	}
}

// idle reports whether no notification is queued or running, so that a
// request may start at once.
func (q *queue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.blocked > 0 || (!q.running && len(q.items) == 0)
}

// enter marks the running notification as waiting on an outgoing call and
// starts the requests queued behind it.
func (q *queue) enter() {
	q.mu.Lock()
	q.blocked++
	var starts []func()
	kept := q.items[:0]
	for _, it := range q.items {
		if it.start != nil {
			starts = append(starts, it.start)
		} else {
			kept = append(kept, it)
		}
	}
	for i := len(kept); i < len(q.items); i++ {
		q.items[i] = queued{}
	}
	q.items = kept
	q.mu.Unlock()
	for _, s := range starts {
		s()
	}
}

func (q *queue) exit() {
	q.mu.Lock()
	q.blocked--
	q.mu.Unlock()
}
