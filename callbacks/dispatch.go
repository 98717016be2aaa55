package callbacks

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/mpbridge/mpbridge/bridge"
)

// object serves a Go interface value by reflection.
type object struct {
	info *ifaceInfo
	v    reflect.Value // of the interface type
}

var _ bridge.Object = (*object)(nil)

func (o *object) Interface() string { return o.info.name }
func (o *object) Serial() bool      { return o.info.serial }
func (o *object) Unwrap() any       { return o.v.Interface() }

// Close closes the wrapped value when its last reference is released, if
// it has a Close method.
func (o *object) Close() error {
	switch c := o.v.Interface().(type) {
	case interface{ Close() error }:
		return c.Close()
	case interface{ Close() }:
		c.Close()
	}
	return nil
}

func (o *object) Call(ctx context.Context, method string, p *bridge.Params) (any, error) {
	mi := o.info.methods[method]
	if mi == nil {
		return nil, bridge.Errorf(bridge.CodeMethodNotFound, "method not found: %s has no method %q", o.info.name, method)
	}
	return invoke(ctx, o.v.Method(mi.index), mi, p)
}

// invoke decodes the parameters of mi, calls fn and encodes its result.
func invoke(ctx context.Context, fn reflect.Value, mi *methodInfo, p *bridge.Params) (any, error) {
	args := make([]reflect.Value, 0, len(mi.ptypes)+1)
	if mi.hasCtx {
		args = append(args, reflect.ValueOf(ctx))
	}
	for i, name := range mi.params {
		t := mi.ptypes[i]
		pv := reflect.New(t)
		if t.Kind() == reflect.Pointer {
			if _, err := p.DecodeOptional(name, pv.Interface()); err != nil {
				return nil, err
			}
		} else if err := p.Decode(name, pv.Interface()); err != nil {
			return nil, err
		}
		args = append(args, pv.Elem())
	}
	if err := p.CheckUnused(); err != nil {
		return nil, err
	}
	out := fn.Call(args)
	if mi.hasErr {
		if e := out[len(out)-1]; !e.IsNil() {
			return nil, e.Interface().(error)
		}
	}
	if mi.result == nil {
		return nil, nil
	}
	r := out[0]
	if k := mi.result.Kind(); k == reflect.Interface || k == reflect.Func || k == reflect.Struct || k == reflect.Slice || k == reflect.Map || k == reflect.Array {
		// A pointer keeps the static type, so interface values are
		// exported as the declared interface.
		ptr := reflect.New(mi.result)
		ptr.Elem().Set(r)
		return ptr.Interface(), nil
	}
	return r.Interface(), nil
}

// funcObject serves a Go func value as "<Name>.call".
type funcObject struct {
	info *funcInfo
	v    reflect.Value
}

func (f *funcObject) Interface() string { return f.info.name }
func (f *funcObject) Unwrap() any       { return f.v.Interface() }

func (f *funcObject) Call(ctx context.Context, method string, p *bridge.Params) (any, error) {
	if method != "call" {
		return nil, bridge.Errorf(bridge.CodeMethodNotFound, "method not found: %s has no method %q", f.info.name, method)
	}
	return invoke(ctx, f.v, f.info.m, p)
}

// makeFuncProxy builds a func of type fi.t that calls r.
func makeFuncProxy(fi *funcInfo, r *bridge.Remote) reflect.Value {
	mi := fi.m
	method := fi.name + ".call"
	return reflect.MakeFunc(fi.t, func(in []reflect.Value) []reflect.Value {
		ctx := context.Background()
		if mi.hasCtx {
			if c, ok := in[0].Interface().(context.Context); ok && c != nil {
				ctx = c
			}
			in = in[1:]
		}
		args := reflect.New(mi.args)
		for i, v := range in {
			args.Elem().Field(i).Set(v)
		}
		params := args.Interface()
		var res reflect.Value
		var resPtr any
		if mi.result != nil {
			res = reflect.New(mi.result)
			resPtr = res.Interface()
		}
		err := r.Call(ctx, method, params, resPtr)
		outs := make([]reflect.Value, 0, 2)
		if mi.result != nil {
			outs = append(outs, res.Elem())
		}
		if mi.hasErr {
			ev := reflect.New(errType).Elem()
			if err != nil {
				ev.Set(reflect.ValueOf(err))
			}
			outs = append(outs, ev)
		} else if err != nil {
			slog.Warn("callback failed and its type has no error result", "func", fi.name, "error", err)
		}
		return outs
	})
}

// Proxy is a helper for hand-written proxies: embed it and implement each
// method with a call to Call.
type Proxy struct {
	R *bridge.Remote
}

// BridgeRemote implements bridge.Proxy.
func (p Proxy) BridgeRemote() *bridge.Remote { return p.R }

// Close gives back the proxy's reference (see bridge.Remote.Close).
func (p Proxy) Close() error { return p.R.Close() }

// Call calls method on the remote object with params given as alternating
// names and values, decoding the result into result (a pointer or nil).
func (p Proxy) Call(ctx context.Context, method string, result any, nameValues ...any) error {
	if len(nameValues)%2 != 0 {
		return fmt.Errorf("callbacks: odd number of name/value arguments for %s", method)
	}
	var params any
	if len(nameValues) > 0 {
		params = bridge.Named(nameValues)
	}
	return p.R.Call(ctx, method, params, result)
}
