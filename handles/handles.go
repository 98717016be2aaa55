// Package handles keeps the export and import tables of one connection.
//
// An export is an object this endpoint serves to its peer under an opaque id;
// an import is an id the peer exported to us. Both sides count references:
// every occurrence of an id in a message that reaches the peer gives the peer
// one reference, and the peer gives references back with counted releases.
// When an export's count reaches zero the id dies and is never minted again.
//
// A Table is a plain data structure owned by one connection. Its zero value is
// ready to use (it mints ids with the prefix "c" until Prefix is set). It
// never calls application code: operations that drop objects return them so
// the caller can close them after it has released its own locks.
package handles

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strconv"
	"sync"
)

// Bootstrap is the id of the bootstrap object, which every endpoint that
// serves one exports before the first message.
const Bootstrap = "init"

// ErrLimit is returned by Export when the table holds its maximum number of
// live exports.
var ErrLimit = errors.New("live handle limit reached")

// ErrClosed is returned by Export after DropAll: the connection the table
// belongs to has ended, so nothing new is exported on it.
var ErrClosed = errors.New("handle table closed: the connection has ended")

// Table holds the exports and imports of one connection. Methods are safe for
// concurrent use.
type Table struct {
	// Prefix starts every id this table mints ("s" for the endpoint that
	// serves the bootstrap object, "c" for the other). Set it before first
	// use; empty means "c".
	Prefix string
	// MaxExports caps the number of live exports (0 means no limit).
	MaxExports int

	mu      sync.Mutex
	seq     uint64 // last id number minted
	created uint64 // creation order of exports, for DropAll
	live    int    // exports not yet dead
	rng     *mrand.ChaCha8
	exports map[string]*export
	byKey   map[any]string
	imports map[string]int
	closed  bool // DropAll ran: Export fails, Import is ignored
}

type export struct {
	id     string
	obj    any
	key    any
	iface  string
	refs   int
	active int
	dead   bool
	order  uint64
	keep   []any
}

// Dropped is an object whose last reference went away. The caller closes Obj
// (if it wants to) and disposes of Keep, the values attached with Attach.
type Dropped struct {
	ID    string
	Obj   any
	Iface string
	Keep  []any
}

// ExportInfo describes one live export.
type ExportInfo struct {
	Handle    string `json:"handle"`
	Interface string `json:"interface"`
	Refs      int    `json:"refs"`
}

// ImportInfo describes one live import.
type ImportInfo struct {
	Handle string `json:"handle"`
	Refs   int    `json:"refs"`
}

func (t *Table) init() {
	if t.exports != nil {
		return
	}
	t.exports = make(map[string]*export)
	t.byKey = make(map[any]string)
	t.imports = make(map[string]int)
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	t.rng = mrand.NewChaCha8(seed)
	if t.Prefix == "" {
		t.Prefix = "c"
	}
}

// mint returns a fresh id: prefix, a sequence number and a random 64-bit
// suffix, so that ids are never reused and an id that strays onto another
// connection names nothing there.
func (t *Table) mint() string {
	t.seq++
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], t.rng.Uint64())
	buf := make([]byte, 0, 24)
	buf = append(buf, t.Prefix...)
	buf = strconv.AppendUint(buf, t.seq, 10)
	buf = append(buf, '.')
	for _, c := range b {
		buf = append(buf, hexDigits[c>>4], hexDigits[c&15])
	}
	return string(buf)
}

const hexDigits = "0123456789abcdef"

// SetBootstrap exports obj under the fixed id "init" with one reference that
// only an explicit release of "init" gives back.
func (t *Table) SetBootstrap(obj any, iface string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	t.created++
	t.live++
	t.exports[Bootstrap] = &export{id: Bootstrap, obj: obj, iface: iface, refs: 1, order: t.created}
}

// Export adds one reference to obj and returns its id. A non-nil key
// identifies the object: exporting the same key again while it is live
// returns the same id. A nil key always mints a new id.
func (t *Table) Export(obj any, key any, iface string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	if t.closed {
		return "", ErrClosed
	}
	if key != nil {
		if id, ok := t.byKey[key]; ok {
			e := t.exports[id]
			e.refs++
			return id, nil
		}
	}
	if t.MaxExports > 0 && t.live >= t.MaxExports {
		return "", fmt.Errorf("%w (%d)", ErrLimit, t.MaxExports)
	}
	id := t.mint()
	t.live++
	t.created++
	t.exports[id] = &export{id: id, obj: obj, key: key, iface: iface, refs: 1, order: t.created}
	if key != nil {
		t.byKey[key] = id
	}
	return id, nil
}

// AddRef adds one reference to a live export, as when its id is sent again.
// It reports false if the id is not live.
func (t *Table) AddRef(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[id]
	if !ok || e.dead {
		return false
	}
	e.refs++
	return true
}

// Lookup returns the live exported object named by id.
func (t *Table) Lookup(id string) (obj any, iface string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[id]
	if !ok || e.dead {
		return nil, "", false
	}
	return e.obj, e.iface, true
}

// Acquire marks one call as running on the live export id, so that a release
// arriving meanwhile defers dropping it until the matching Finish.
func (t *Table) Acquire(id string) (obj any, iface string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[id]
	if !ok || e.dead {
		return nil, "", false
	}
	e.active++
	return e.obj, e.iface, true
}

// Finish ends a call started with Acquire. If the export died while the call
// ran and this was its last call, it is returned for the caller to close.
func (t *Table) Finish(id string) (Dropped, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[id]
	if !ok {
		return Dropped{}, false
	}
	e.active--
	if e.dead && e.active == 0 {
		delete(t.exports, id)
		return e.dropped(), true
	}
	return Dropped{}, false
}

// Attach ties values to the life of the live export id: they are handed back
// in Dropped.Keep when it is dropped. It reports false if id is not live.
func (t *Table) Attach(id string, v any) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[id]
	if !ok || e.dead {
		return false
	}
	e.keep = append(e.keep, v)
	return true
}

func (e *export) dropped() Dropped {
	return Dropped{ID: e.id, Obj: e.obj, Iface: e.iface, Keep: e.keep}
}

// Release gives back n references to the export id. When the count reaches
// zero the id dies at once (later lookups fail); the object is returned for
// closing unless calls on it are still running, in which case the last
// Finish returns it. Releasing more references than are held is reported
// as an error after dropping the object. Releasing the bootstrap id is the
// caller's business and is refused here.
func (t *Table) Release(id string, n int) (Dropped, bool, error) {
	if n <= 0 {
		return Dropped{}, false, fmt.Errorf("release of %q: count %d is not positive", id, n)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[id]
	if !ok || e.dead {
		return Dropped{}, false, fmt.Errorf("release of %q: no such live handle", id)
	}
	if id == Bootstrap {
		return Dropped{}, false, errors.New("release of init is a shutdown, not a table operation")
	}
	var err error
	if n > e.refs {
		err = fmt.Errorf("release of %q: count %d exceeds the %d references held", id, n, e.refs)
		n = e.refs
	}
	e.refs -= n
	if e.refs > 0 {
		return Dropped{}, false, err
	}
	e.dead = true
	t.live--
	if e.key != nil {
		delete(t.byKey, e.key)
	}
	if e.active > 0 {
		return Dropped{}, false, err
	}
	delete(t.exports, id)
	return e.dropped(), true, err
}

// DropAll kills every export, the bootstrap object included, and returns
// them newest first, for closing when the connection ends. The table is
// closed after it: Export fails with ErrClosed and Import does nothing, so
// a call racing the connection's end leaves nothing behind.
func (t *Table) DropAll() []Dropped {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := make([]*export, 0, len(t.exports))
	for _, e := range t.exports {
		all = append(all, e)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].order > all[j].order })
	out := make([]Dropped, 0, len(all))
	for _, e := range all {
		out = append(out, e.dropped())
	}
	clear(t.exports)
	clear(t.byKey)
	clear(t.imports)
	t.live = 0
	t.closed = true
	return out
}

// Import records that the peer sent us one more reference to its id.
func (t *Table) Import(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	if t.closed {
		return
	}
	t.imports[id]++
}

// Imported reports how many references to the peer's id we hold.
func (t *Table) Imported(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.imports[id]
}

// Unimport gives back up to n references to the peer's id and returns how
// many were actually held and given back (the count to send in a release).
func (t *Table) Unimport(id string, n int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	held := t.imports[id]
	if n > held {
		n = held
	}
	if held-n == 0 {
		delete(t.imports, id)
	} else {
		t.imports[id] = held - n
	}
	return n
}

// Len reports the number of live exports and imports.
func (t *Table) Len() (exports, imports int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.exports {
		if !e.dead {
			exports++
		}
	}
	return exports, len(t.imports)
}

// Snapshot lists the live exports and imports, sorted by id.
func (t *Table) Snapshot() ([]ExportInfo, []ImportInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ex := make([]ExportInfo, 0, len(t.exports))
	for _, e := range t.exports {
		if !e.dead {
			ex = append(ex, ExportInfo{Handle: e.id, Interface: e.iface, Refs: e.refs})
		}
	}
	im := make([]ImportInfo, 0, len(t.imports))
	for id, n := range t.imports {
		im = append(im, ImportInfo{Handle: id, Refs: n})
	}
	sort.Slice(ex, func(i, j int) bool { return ex[i].Handle < ex[j].Handle })
	sort.Slice(im, func(i, j int) bool { return im[i].Handle < im[j].Handle })
	return ex, im
}
