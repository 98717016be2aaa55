package gentest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/gentest/fixture/dep"
	"github.com/mpbridge/mpbridge/internal/gentest/plain"
	"github.com/mpbridge/mpbridge/internal/gentest/plain/plainipc"
)

// The tests here call package plain through the bindings mpgen generated
// into package plainipc, as the example's processes call node and wallet
// through nodeipc and walletipc.

// store implements plain.Store.
type store struct {
	mu       sync.Mutex
	items    map[string]plain.Item
	watchers map[*watch]plain.Changed
}

func newStore() *store {
	return &store{items: map[string]plain.Item{}, watchers: map[*watch]plain.Changed{}}
}

func (s *store) Put(ctx context.Context, item plain.Item) error {
	s.mu.Lock()
	s.items[item.Name] = item
	var fns []plain.Changed
	for _, fn := range s.watchers {
		fns = append(fns, fn)
	}
	s.mu.Unlock()
	for _, fn := range fns {
		if err := fn(ctx, item.Name, item.Level); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) Get(_ context.Context, name string) (*plain.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if item, ok := s.items[name]; ok {
		return &item, nil
	}
	return nil, nil
}

func (s *store) Find(_ context.Context, level *plain.Level) ([]plain.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []plain.Item{}
	for _, item := range s.items {
		if level == nil || item.Level >= *level {
			out = append(out, item)
		}
	}
	slices.SortFunc(out, func(a, b plain.Item) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s *store) Watch(_ context.Context, fn plain.Changed) (plain.Watch, error) {
	if fn == nil {
		return nil, errors.New("fn must not be null")
	}
	w := &watch{s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchers[w] = fn
	return w, nil
}

func (s *store) Greeter(_ context.Context, who string) (dep.Greeter, error) {
	return greeter{"hello from " + who}, nil
}

func (s *store) watching() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}

// watch implements plain.Watch; releasing it stops it too.
type watch struct{ s *store }

func (w *watch) Stop(context.Context) error { return w.Close() }

func (w *watch) Close() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	delete(w.s.watchers, w)
	return nil
}

// TestPlainGeneratedCodeInUse checks that importing plainipc registers
// the proxies and dispatchers generated there.
func TestPlainGeneratedCodeInUse(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{fmt.Sprintf("%T", callbacks.Export[plain.Store](newStore())), "*plainipc.storeObject"},
		{fmt.Sprintf("%T", callbacks.Export[plain.Watch](&watch{})), "*plainipc.watchObject"},
		{fmt.Sprintf("%T", must(callbacks.Import[plain.Store](bridge.NewRemote(nil, "s1")))), "plainipc.storeProxy"},
		{fmt.Sprintf("%T", must(callbacks.Import[plain.Watch](bridge.NewRemote(nil, "s1")))), "plainipc.watchProxy"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

// TestPlainRoundTrip calls every method of plain.Store through the
// generated proxy, served by the generated dispatcher.
func TestPlainRoundTrip(t *testing.T) {
	impl := newStore()
	client, _, s := connect[plain.Store](t, impl, callbacks.Default)
	ctx := ctxT(t)
	when := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	a := plain.Item{Name: "a", Level: 1, At: when, Labels: map[string]string{"k": "v"}}
	b := plain.Item{Name: "b", Level: 3, At: when}

	var mu sync.Mutex
	var seen []string
	w, err := s.Watch(ctx, func(_ context.Context, name string, level plain.Level) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s@%d", name, level))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if typeName(w) != "plainipc.watchProxy" {
		t.Errorf("Watch returned a %T", w)
	}
	for _, item := range []plain.Item{a, b} {
		if err := s.Put(ctx, item); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	if want := []string{"a@1", "b@3"}; !slices.Equal(seen, want) {
		t.Errorf("fn saw %v, want %v", seen, want)
	}
	mu.Unlock()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := impl.watching(); n != 0 {
		t.Errorf("%d watchers after Stop", n)
	}
	if err := callbacks.Release(w); err != nil {
		t.Fatal(err)
	}

	if got, err := s.Get(ctx, "a"); err != nil || !reflect.DeepEqual(got, &a) {
		t.Errorf("Get(a) = %#v, %v", got, err)
	}
	if got, err := s.Get(ctx, "zz"); err != nil || got != nil {
		t.Errorf("Get(zz) = %#v, %v", got, err)
	}
	if got, err := s.Find(ctx, nil); err != nil || !reflect.DeepEqual(got, []plain.Item{a, b}) {
		t.Errorf("Find(nil) = %#v, %v", got, err)
	}
	level := plain.Level(2)
	if got, err := s.Find(ctx, &level); err != nil || !reflect.DeepEqual(got, []plain.Item{b}) {
		t.Errorf("Find(2) = %#v, %v", got, err)
	}

	g, err := s.Greeter(ctx, "plain")
	if err != nil {
		t.Fatal(err)
	}
	if typeName(g) != "dep.greeterProxy" {
		t.Errorf("Greeter returned a %T", g)
	}
	if got, err := g.Greet(ctx, "you"); err != nil || got != "hello from plain, you" {
		t.Errorf("Greet = %q, %v", got, err)
	}
	if err := callbacks.Release(g); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server to drop every handle but the bootstrap", func() bool {
		ex, _ := client.Handles()
		return len(ex) == 0
	})
}

// TestPlainDiscover checks the OpenRPC fragments generated into plainipc
// against discovery by reflection, and rpc.discover over a connection.
func TestPlainDiscover(t *testing.T) {
	frags := []struct {
		wire string
		typ  reflect.Type
		doc  []byte
	}{
		{"Changed", reflect.TypeFor[plain.Changed](), plainipc.OpenRPCChanged()},
		{"Greeter", reflect.TypeFor[dep.Greeter](), dep.OpenRPCGreeter()},
		{"Store", reflect.TypeFor[plain.Store](), plainipc.OpenRPCStore()},
		{"Subscription", reflect.TypeFor[plain.Watch](), plainipc.OpenRPCWatch()},
	}
	var all []any
	for _, f := range frags {
		var got []any
		if err := json.Unmarshal(f.doc, &got); err != nil {
			t.Fatalf("%s: fragment is not JSON: %v", f.wire, err)
		}
		all = append(all, got...)
		var want []any
		ms, _ := normal(t, callbacks.Default.Discover(f.typ))
		for _, m := range ms {
			if strings.HasPrefix(methodName(m), f.wire+".") {
				want = append(want, m)
			}
		}
		if len(want) == 0 || !reflect.DeepEqual(got, want) {
			g, _ := json.MarshalIndent(got, "", "  ")
			w, _ := json.MarshalIndent(want, "", "  ")
			t.Errorf("%s: generated fragment\n%s\ndiffers from Discover\n%s", f.wire, g, w)
		}
	}

	client, _, _ := connect[plain.Store](t, newStore(), callbacks.Default)
	var doc struct {
		Methods []any `json:"methods"`
	}
	if err := client.Call(ctxT(t), "rpc.discover", nil, &doc); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b any) int { return strings.Compare(methodName(a), methodName(b)) })
	if got, _ := normal(t, doc.Methods); !reflect.DeepEqual(got, all) {
		var names []string
		for _, m := range got {
			names = append(names, methodName(m))
		}
		t.Errorf("rpc.discover lists %v", names)
	}
}
