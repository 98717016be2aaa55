package main

import (
	"cmp"
	"errors"
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"reflect"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/openrpc"
)

// Choosing and checking: which types to generate, their methods, and
// whether their parameter and result types can cross the wire.

// build selects the types to generate and checks them.
func (g *generator) build(names []string) error {
	if err := g.readDirectives(); err != nil {
		return err
	}
	scope := g.pkg.Types.Scope()
	if names != nil {
		for _, name := range names {
			tn, _ := scope.Lookup(strings.TrimSpace(name)).(*types.TypeName)
			if tn == nil {
				return fmt.Errorf("mpgen: -type: package %s has no type %q", g.pkg.PkgPath, name)
			}
			switch tn.Type().Underlying().(type) {
			case *types.Interface, *types.Signature:
			default:
				return fmt.Errorf("mpgen: -type: %s is neither an interface nor a func type", tn.Name())
			}
			g.enqueue(tn)
		}
	} else {
		for _, name := range scope.Names() { // sorted
			if tn, ok := scope.Lookup(name).(*types.TypeName); ok && g.dirs[tn].iface {
				g.enqueue(tn)
			}
		}
		if len(g.queue) == 0 {
			return fmt.Errorf("mpgen: package %s has no type marked //mpgen:interface (or use -type)", g.pkg.PkgPath)
		}
	}
	for len(g.queue) > 0 {
		tn := g.queue[0]
		g.queue = g.queue[1:]
		g.add(tn)
	}
	wires := map[string]*genType{}
	for _, gt := range g.order {
		if other := wires[gt.wire]; other != nil {
			g.errorf(gt.obj.Pos(), "%s: wire name %q is also the name of %s", gt.obj.Name(), gt.wire, other.obj.Name())
		}
		wires[gt.wire] = gt
	}
	if len(g.errs) > 0 {
		slices.SortFunc(g.errs, func(a, b posError) int {
			return cmp.Or(strings.Compare(a.pos.Filename, b.pos.Filename),
				cmp.Compare(a.pos.Offset, b.pos.Offset), strings.Compare(a.msg, b.msg))
		})
		var msgs []string
		for _, e := range slices.Compact(g.errs) {
			msgs = append(msgs, e.pos.String()+": "+e.msg)
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	slices.SortFunc(g.order, func(a, b *genType) int { return strings.Compare(a.obj.Name(), b.obj.Name()) })
	return nil
}

// posError is a complaint about the declaration at pos.
type posError struct {
	pos token.Position
	msg string
}

func (g *generator) errorf(pos token.Pos, format string, args ...any) {
	g.errs = append(g.errs, posError{g.pkg.Fset.Position(pos), fmt.Sprintf(format, args...)})
}

// readDirectives collects the //mpgen: lines of the package's type
// declarations.
func (g *generator) readDirectives() error {
	g.dirs = map[*types.TypeName]directives{}
	g.docs = map[token.Pos]string{}
	var bad []string
	for _, f := range g.pkg.Syntax {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				g.docs[ts.Name.Pos()] = doc.Text() // without the //mpgen: directives
				if it, ok := ts.Type.(*ast.InterfaceType); ok {
					for _, f := range it.Methods.List {
						for _, n := range f.Names {
							g.docs[n.Pos()] = f.Doc.Text()
						}
					}
				}
				if doc == nil {
					continue
				}
				var d directives
				for _, c := range doc.List {
					text, ok := strings.CutPrefix(c.Text, "//mpgen:")
					if !ok {
						continue
					}
					verb, arg, _ := strings.Cut(text, " ")
					arg = strings.TrimSpace(arg)
					pos := g.pkg.Fset.Position(c.Pos()).String()
					switch {
					case verb == "interface" && arg == "":
						d.iface = true
					case verb == "serial" && arg == "":
						d.serial = true
					case verb == "name" && validWireName(arg):
						d.name = arg
					case verb == "name":
						bad = append(bad, fmt.Sprintf("%s: %s: invalid wire name %q (a name without dots or spaces, not \"rpc\")", pos, ts.Name.Name, arg))
					default:
						bad = append(bad, fmt.Sprintf("%s: %s: unknown directive %s", pos, ts.Name.Name, c.Text))
					}
				}
				if tn, ok := g.pkg.Types.Scope().Lookup(ts.Name.Name).(*types.TypeName); ok {
					g.dirs[tn] = d
				}
			}
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "\n"))
	}
	return nil
}

func validWireName(s string) bool {
	return s != "" && s != "rpc" && !strings.ContainsAny(s, ". \t$")
}

func (g *generator) enqueue(tn *types.TypeName) {
	if _, ok := g.gen[tn]; ok {
		return
	}
	g.gen[tn] = nil // queued
	g.queue = append(g.queue, tn)
}

// add checks the interface or func type tn and adds it to the model.
func (g *generator) add(tn *types.TypeName) {
	d := g.dirs[tn]
	gt := &genType{obj: tn, wire: tn.Name(), serial: d.serial, doc: strings.TrimSpace(g.docs[tn.Pos()])}
	if d.name != "" {
		gt.wire = d.name
	}
	g.gen[tn] = gt
	g.order = append(g.order, gt)
	if !g.target.own && !tn.Exported() {
		g.errorf(tn.Pos(), "%s: is unexported, so package %s, where mpgen generates, cannot name it: export it, or generate into package %s",
			tn.Name(), g.target.name, g.pkg.Name)
		return
	}
	named, _ := tn.Type().(*types.Named)
	if tn.IsAlias() || named == nil {
		g.errorf(tn.Pos(), "%s: is an alias; generate the type it stands for", tn.Name())
		return
	}
	if named.TypeParams().Len() > 0 {
		g.errorf(tn.Pos(), "%s: generic types are not supported", tn.Name())
		return
	}
	switch u := named.Underlying().(type) {
	case *types.Interface:
		if u.NumMethods() == 0 {
			g.errorf(tn.Pos(), "%s: interface has no methods", tn.Name())
		}
		wires := map[string]string{}
		for i := range u.NumMethods() {
			fn := u.Method(i)
			where := tn.Name() + "." + fn.Name()
			pos := fn.Pos()
			if fn.Pkg() != g.pkg.Types {
				pos = tn.Pos() // embedded from another package
			}
			switch {
			case !fn.Exported():
				g.errorf(pos, "%s: unexported methods cannot be called remotely", where)
				continue
			case fn.Name() == "BridgeRemote":
				g.errorf(pos, "%s: the name is taken by bridge.Proxy", where)
				continue
			}
			wire := callbacks.WireName(fn.Name())
			if other := wires[wire]; other != "" {
				g.errorf(pos, "%s: methods %s and %s have the same wire name %q", where, other, fn.Name(), wire)
				continue
			}
			wires[wire] = fn.Name()
			if m := g.method(where, pos, fn.Type().(*types.Signature)); m != nil {
				m.goName, m.wire = fn.Name(), wire
				m.doc = openrpc.Describe(g.docs[fn.Pos()], fn.Name(), wire)
				gt.methods = append(gt.methods, m)
			}
		}
	case *types.Signature:
		gt.isFunc = true
		if d.serial {
			g.errorf(tn.Pos(), "%s: //mpgen:serial applies to interfaces, not func types", tn.Name())
		}
		if m := g.method(tn.Name(), tn.Pos(), u); m != nil {
			m.goName, m.wire = "Call", "call"
			gt.methods = append(gt.methods, m)
		}
	default:
		g.errorf(tn.Pos(), "%s: is neither an interface nor a func type", tn.Name())
	}
}

// method checks the signature of the method (or func type) where.
func (g *generator) method(where string, pos token.Pos, sig *types.Signature) *method {
	ok := true
	fail := func(format string, args ...any) {
		g.errorf(pos, where+": "+format, args...)
		ok = false
	}
	m := &method{}
	params := sig.Params()
	seen := map[string]string{}
	for i := range params.Len() {
		v := params.At(i)
		ts := g.typeString(v.Type())
		if isContext(v.Type()) {
			if i == 0 {
				m.hasCtx = true
			} else {
				fail("parameter %s: context.Context must be the first parameter", v.Name())
			}
			continue
		}
		if sig.Variadic() && i == params.Len()-1 {
			fail("variadic parameter %s ...%s is not supported; use a slice", v.Name(), g.typeString(v.Type().(*types.Slice).Elem()))
			continue
		}
		if v.Name() == "" || v.Name() == "_" {
			fail("parameter %d (%s) has no name; mpgen needs one for the wire", i+1, ts)
			continue
		}
		wire := callbacks.WireName(v.Name())
		if r, _ := utf8.DecodeRuneInString(wire); !unicode.IsLetter(r) {
			fail("parameter %s: the name must start with a letter", v.Name())
			continue
		}
		if other, dup := seen[wire]; dup {
			fail("parameters %s and %s have the same wire name %q", other, v.Name(), wire)
			continue
		}
		seen[wire] = v.Name()
		if why := g.check(v.Type()); why != "" {
			fail("parameter %s: %s", v.Name(), why)
			continue
		}
		m.params = append(m.params, param{goName: v.Name(), wire: wire, typ: v.Type()})
	}
	res := sig.Results()
	n := res.Len()
	switch {
	case n == 0 || !isError(res.At(n-1).Type()):
		fail("the last result must be error: a remote call can always fail")
	case n > 2:
		var ts []string
		for i := range n {
			ts = append(ts, g.typeString(res.At(i).Type()))
		}
		fail("results (%s): at most one result besides error is supported", strings.Join(ts, ", "))
	case n == 2:
		m.result = res.At(0).Type()
		if why := g.check(m.result); why != "" {
			fail("result: %s", why)
		}
	}
	if !ok {
		return nil
	}
	return m
}

func isContext(t types.Type) bool {
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "context" && n.Obj().Name() == "Context"
}

var errorType = types.Universe.Lookup("error").Type()

func isError(t types.Type) bool { return types.Identical(t, errorType) }

func isTime(t types.Type) bool {
	n, ok := types.Unalias(t).(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "time" && n.Obj().Name() == "Time"
}

// typeString prints t for messages, qualifying names of other packages
// than the one generated into.
func (g *generator) typeString(t types.Type) string {
	return types.TypeString(t, func(p *types.Package) string {
		if p == g.pkg.Types && g.target.own {
			return ""
		}
		return p.Name()
	})
}

// unnameable reports why the generated file cannot name the type o, or
// "" if it can.
func (g *generator) unnameable(o types.Object, ts string) string {
	switch {
	case o.Exported() || o.Pkg() == nil:
		return ""
	case o.Pkg() != g.pkg.Types:
		return fmt.Sprintf("type %s is unexported in another package", ts)
	case !g.target.own:
		return fmt.Sprintf("type %s is unexported, so package %s, where mpgen generates, cannot name it", ts, g.target.name)
	}
	return ""
}

// check reports why values of type t cannot cross a connection, or "" if
// they can. Same-package interfaces and func types it meets are queued
// for generation.
func (g *generator) check(t types.Type) string {
	ts := g.typeString(t)
	switch t := t.(type) {
	case *types.Alias:
		if why := g.unnameable(t.Obj(), ts); why != "" {
			return why
		}
		return g.check(types.Unalias(t))
	case *types.Named:
		return g.checkNamed(t)
	case *types.Basic:
		switch {
		case t.Info()&(types.IsBoolean|types.IsInteger|types.IsFloat|types.IsString) != 0 && t.Kind() != types.UnsafePointer:
			return ""
		}
		return fmt.Sprintf("type %s is not supported: it has no JSON form", ts)
	case *types.Pointer:
		return g.wrap(ts, g.check(t.Elem()))
	case *types.Slice:
		return g.wrap(ts, g.check(t.Elem()))
	case *types.Array:
		return g.wrap(ts, g.check(t.Elem()))
	case *types.Map:
		k, ok := t.Key().Underlying().(*types.Basic)
		if !ok || k.Info()&(types.IsString|types.IsInteger|types.IsFloat) == 0 {
			return fmt.Sprintf("type %s is not supported: map keys must be strings or numbers (JSON object keys)", ts)
		}
		return g.wrap(ts, g.check(t.Elem()))
	case *types.Struct:
		for i := range t.NumFields() {
			f := t.Field(i)
			if _, skip, _ := jsonField(f, t.Tag(i)); skip {
				continue
			}
			if why := g.check(f.Type()); why != "" {
				return fmt.Sprintf("field %s: %s", f.Name(), why)
			}
		}
		return ""
	case *types.Interface:
		if t.Empty() {
			return "" // any: plain JSON values
		}
		return fmt.Sprintf("unnamed interface type %s is not supported: declare a named interface", ts)
	case *types.Signature:
		return fmt.Sprintf("unnamed func type %s is not supported: declare a named func type", ts)
	case *types.Chan:
		return fmt.Sprintf("type %s is not supported: channels cannot cross a connection", ts)
	case *types.TypeParam:
		return fmt.Sprintf("type parameter %s is not supported", ts)
	}
	return fmt.Sprintf("type %s is not supported", ts)
}

// wrap adds the enclosing type to a nested complaint.
func (g *generator) wrap(outer, why string) string {
	if why == "" {
		return ""
	}
	return "in " + outer + ": " + why
}

func (g *generator) checkNamed(t *types.Named) string {
	ts := g.typeString(t)
	o := t.Obj()
	if o.Pkg() == nil {
		if isError(t) {
			return "type error is only supported as the last result: send error text as a string"
		}
		return fmt.Sprintf("type %s is not supported", ts)
	}
	if why := g.unnameable(o, ts); why != "" {
		return why
	}
	if isTime(t) {
		return ""
	}
	if why, ok := g.checks[t]; ok {
		return why
	}
	g.checks[t] = "" // assume fine while checking recursive types
	var why string
	switch u := t.Underlying().(type) {
	case *types.Interface, *types.Signature:
		switch {
		case t.TypeArgs().Len() > 0 || t.TypeParams().Len() > 0:
			why = fmt.Sprintf("generic type %s is not supported", ts)
		case o.Pkg() == g.pkg.Types:
			if iface, ok := u.(*types.Interface); ok && iface.Empty() {
				break
			}
			g.enqueue(o)
		}
		// An interface or func type of another package must be registered
		// there.
	default:
		if inner := g.check(u); inner != "" {
			why = "in " + ts + ": " + inner
		}
	}
	g.checks[t] = why
	return why
}

// jsonField reads the json tag of struct field f the way callbacks.Schema
// does: its wire name, whether it is left out, and whether it may be
// omitted.
func jsonField(f *types.Var, tag string) (name string, skip, omit bool) {
	if !f.Exported() {
		return "", true, false
	}
	name = f.Name()
	if tag, ok := reflect.StructTag(tag).Lookup("json"); ok {
		parts := strings.Split(tag, ",")
		if parts[0] == "-" && len(parts) == 1 {
			return "", true, false
		}
		if parts[0] != "" {
			name = parts[0]
		}
		for _, o := range parts[1:] {
			if o == "omitempty" || o == "omitzero" {
				omit = true
			}
		}
	}
	return name, false, omit
}
