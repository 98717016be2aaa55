package handles

import (
	"errors"
	"strings"
	"testing"
)

func TestZeroValueMintsClientIDs(t *testing.T) {
	var tb Table
	id, err := tb.Export("x", nil, "I")
	if err != nil || !strings.HasPrefix(id, "c1.") || len(id) != len("c1.")+16 {
		t.Fatalf("id %q err %v", id, err)
	}
}

func TestSameKeySameID(t *testing.T) {
	tb := Table{Prefix: "s"}
	obj := new(int)
	a, _ := tb.Export(obj, obj, "I")
	b, _ := tb.Export(obj, obj, "I")
	if a != b {
		t.Fatalf("same key got %s and %s", a, b)
	}
	if ex, _ := tb.Snapshot(); len(ex) != 1 || ex[0].Refs != 2 {
		t.Fatalf("snapshot %+v", ex)
	}
	c, _ := tb.Export(obj, nil, "I")
	if c == a {
		t.Fatal("nil key reused an id")
	}
}

func TestReleaseCountsAndDrop(t *testing.T) {
	tb := Table{Prefix: "s"}
	obj := new(int)
	id, _ := tb.Export(obj, obj, "I")
	tb.AddRef(id)
	if _, dropped, err := tb.Release(id, 1); dropped || err != nil {
		t.Fatalf("first release dropped=%v err=%v", dropped, err)
	}
	d, dropped, err := tb.Release(id, 1)
	if !dropped || err != nil || d.Obj != obj {
		t.Fatalf("last release %+v %v %v", d, dropped, err)
	}
	if _, _, ok := tb.Lookup(id); ok {
		t.Fatal("dead id still found")
	}
	// The key is free again: a new export mints a new id.
	id2, _ := tb.Export(obj, obj, "I")
	if id2 == id {
		t.Fatal("id reused")
	}
	if _, _, err := tb.Release(id, 1); err == nil {
		t.Fatal("release of a dead id succeeded")
	}
}

func TestOverReleaseDropsOnlyThatObject(t *testing.T) {
	tb := Table{Prefix: "s"}
	a, _ := tb.Export("a", nil, "I")
	b, _ := tb.Export("b", nil, "I")
	d, dropped, err := tb.Release(a, 5)
	if !dropped || err == nil || d.Obj != "a" {
		t.Fatalf("over-release: %+v %v %v", d, dropped, err)
	}
	if _, _, ok := tb.Lookup(b); !ok {
		t.Fatal("other object dropped")
	}
	for _, n := range []int{0, -1} {
		if _, _, err := tb.Release(b, n); err == nil {
			t.Fatalf("count %d accepted", n)
		}
	}
}

func TestActiveCallDefersDrop(t *testing.T) {
	tb := Table{Prefix: "s"}
	id, _ := tb.Export("a", nil, "I")
	tb.Acquire(id)
	if _, dropped, _ := tb.Release(id, 1); dropped {
		t.Fatal("dropped while a call runs")
	}
	if _, _, ok := tb.Lookup(id); ok {
		t.Fatal("id still live after its last release")
	}
	d, dropped := tb.Finish(id)
	if !dropped || d.Obj != "a" {
		t.Fatalf("finish: %+v %v", d, dropped)
	}
}

func TestAttachAndDropAllOrder(t *testing.T) {
	tb := Table{Prefix: "s"}
	tb.SetBootstrap("init", "Init")
	a, _ := tb.Export("a", nil, "I")
	b, _ := tb.Export("b", nil, "I")
	if !tb.Attach(a, "kept") {
		t.Fatal("attach failed")
	}
	tb.Import("c7.x")
	all := tb.DropAll()
	if len(all) != 3 || all[0].ID != b || all[1].ID != a || all[2].ID != Bootstrap {
		t.Fatalf("drop order %+v", all)
	}
	if len(all[1].Keep) != 1 || all[1].Keep[0] != "kept" {
		t.Fatalf("keep %+v", all[1].Keep)
	}
	if ex, im := tb.Len(); ex != 0 || im != 0 {
		t.Fatalf("left %d exports %d imports", ex, im)
	}
}

func TestImports(t *testing.T) {
	var tb Table
	tb.Import("s1.a")
	tb.Import("s1.a")
	if n := tb.Unimport("s1.a", 5); n != 2 {
		t.Fatalf("unimport gave back %d, want 2", n)
	}
	if n := tb.Unimport("s1.a", 1); n != 0 {
		t.Fatalf("unimport of nothing gave back %d", n)
	}
}

func TestLimit(t *testing.T) {
	tb := Table{Prefix: "s", MaxExports: 2}
	tb.Export("a", nil, "I")
	id, _ := tb.Export("b", nil, "I")
	if _, err := tb.Export("c", nil, "I"); err == nil {
		t.Fatal("limit not enforced")
	}
	tb.Release(id, 1)
	if _, err := tb.Export("c", nil, "I"); err != nil {
		t.Fatalf("release did not make room: %v", err)
	}
}

func TestIDsNeverRepeat(t *testing.T) {
	tb := Table{Prefix: "s"}
	seen := map[string]bool{}
	for range 100000 {
		id, _ := tb.Export(1, nil, "I")
		if seen[id] {
			t.Fatalf("id %s minted twice", id)
		}
		seen[id] = true
		tb.Release(id, 1)
	}
}

// After DropAll the table is closed: an export racing the connection's end
// fails instead of living on in a table no one will drop again.
func TestExportAfterDropAll(t *testing.T) {
	var tb Table
	if _, err := tb.Export("a", nil, "A"); err != nil {
		t.Fatal(err)
	}
	tb.DropAll()
	if id, err := tb.Export("b", nil, "B"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Export after DropAll = %q, %v, want ErrClosed", id, err)
	}
	tb.Import("s9.x")
	if ex, im := tb.Len(); ex != 0 || im != 0 {
		t.Fatalf("after DropAll: %d exports, %d imports", ex, im)
	}
}
