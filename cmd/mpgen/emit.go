package main

import (
	"bytes"
	"fmt"
	"go/format"
	"go/token"
	"go/types"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/mpbridge/mpbridge/callbacks"
)

const (
	bridgePath    = "github.com/mpbridge/mpbridge/bridge"
	callbacksPath = "github.com/mpbridge/mpbridge/callbacks"
)

// emitter writes the generated file of one package.
type emitter struct {
	g        *generator
	prefix   string
	buf      bytes.Buffer
	imports  map[string]string // path to local name
	used     map[string]bool   // paths the file uses
	names    map[string]bool   // import names taken
	reserved map[string]bool   // names a generated body must not shadow
	decls    []decl            // the package-level names the file declares
	siblings []*emitter        // the other files this run generates into the same package
}

// A decl is a package-level name a generated file declares for gt.
type decl struct {
	name string
	gt   *genType
}

// newEmitter returns the emitter of g's file.
func newEmitter(g *generator, prefix string) *emitter {
	e := &emitter{g: g, prefix: prefix, imports: map[string]string{}, used: map[string]bool{}, names: map[string]bool{}}
	for _, gt := range g.order {
		names := []string{e.ident(gt, "Proxy"), e.ident(gt, "Object")}
		if exported(gt) {
			names = append(names, "OpenRPC"+gt.obj.Name(), e.ident(gt, "OpenRPC"))
		}
		for _, n := range names {
			e.decls = append(e.decls, decl{n, gt})
		}
	}
	return e
}

// emit returns the formatted source of the generated file.
func (e *emitter) emit() ([]byte, error) {
	g := e.g
	for _, path := range []string{"context", "reflect", bridgePath, callbacksPath} {
		e.importName(path, path[strings.LastIndex(path, "/")+1:])
	}
	if err := e.checkNames(); err != nil {
		return nil, err
	}
	if !g.target.own {
		e.importName(g.pkg.PkgPath, g.pkg.Name)
	}
	// Name every package the types mention before choosing local names,
	// so that no parameter shadows one.
	name := func(p *types.Package) string { return e.importName(p.Path(), p.Name()) }
	for _, gt := range g.order {
		for _, m := range gt.methods {
			for _, p := range m.params {
				types.TypeString(p.typ, name)
			}
			if m.result != nil {
				types.TypeString(m.result, name)
			}
		}
	}
	e.reserved = map[string]bool{}
	for _, n := range types.Universe.Names() {
		e.reserved[n] = true
	}
	for n := range g.target.decls {
		e.reserved[n] = true
	}
	for n := range e.names {
		e.reserved[n] = true
	}
	for _, n := range []string{"p", "o", "r", "ctx", "method", "params", "res", "err", "impl"} {
		e.reserved[n] = true
	}

	for _, gt := range g.order {
		if gt.isFunc {
			e.funcProxy(gt)
			e.funcObject(gt)
		} else {
			e.proxy(gt)
			e.object(gt)
		}
	}
	for _, gt := range g.order {
		e.openRPC(gt)
	}
	e.register(g.order)

	var out bytes.Buffer
	fmt.Fprintf(&out, "%s\n\npackage %s\n\nimport (\n", header, g.target.name)
	paths := make([]string, 0, len(e.used))
	for p := range e.used {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int {
		if isStd(a) != isStd(b) {
			if isStd(a) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for i, p := range paths {
		if i > 0 && isStd(paths[i-1]) && !isStd(p) {
			out.WriteString("\n")
		}
		name := e.imports[p]
		if name == p[strings.LastIndex(p, "/")+1:] {
			fmt.Fprintf(&out, "\t%q\n", p)
		} else {
			fmt.Fprintf(&out, "\t%s %q\n", name, p)
		}
	}
	out.WriteString(")\n")
	out.Write(e.buf.Bytes())
	src, err := format.Source(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("mpgen: internal error: generated code for %s does not parse: %v\n%s", g.pkg.PkgPath, err, out.Bytes())
	}
	return src, nil
}

// isStd reports whether path is a standard library package.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func (e *emitter) p(format string, args ...any) { fmt.Fprintf(&e.buf, format, args...) }

// importName gives path a local name, unique in the file and not hiding
// a name of the package.
func (e *emitter) importName(path, want string) string {
	if n, ok := e.imports[path]; ok {
		return n
	}
	name := want
	for i := 2; e.names[name] || e.declared(name); i++ {
		name = want + strconv.Itoa(i)
	}
	e.imports[path] = name
	e.names[name] = true
	return name
}

// declared reports whether name is declared at package level: by the
// package's other files, or by one of the files this run generates.
func (e *emitter) declared(name string) bool {
	if _, ok := e.g.target.decls[name]; ok {
		return true
	}
	for _, f := range append([]*emitter{e}, e.siblings...) {
		for _, d := range f.decls {
			if d.name == name {
				return true
			}
		}
	}
	return false
}

// pkg returns the name that qualifies the identifiers of path, and
// records that the file imports it.
func (e *emitter) pkg(path string) string {
	e.used[path] = true
	return e.imports[path]
}

// typ prints t as the generated file spells it.
func (e *emitter) typ(t types.Type) string {
	return types.TypeString(t, func(p *types.Package) string {
		if p == e.g.pkg.Types && e.g.target.own {
			return ""
		}
		e.importName(p.Path(), p.Name())
		return e.pkg(p.Path())
	})
}

// ident returns the name of a generated unexported declaration for gt.
func (e *emitter) ident(gt *genType, suffix string) string {
	if e.prefix != "" {
		return e.prefix + gt.obj.Name() + suffix
	}
	return callbacks.WireName(gt.obj.Name()) + suffix
}

// exported reports whether gt gets an OpenRPC accessor.
func exported(gt *genType) bool { return gt.obj.Exported() }

// goType returns the name of the Go type gt as the generated file
// spells it.
func (e *emitter) goType(gt *genType) string { return e.typ(gt.obj.Type()) }

// checkNames fails if a generated name is declared by the package itself,
// or by another file generated into it.
func (e *emitter) checkNames() error {
	var errs []string
	pos := func(gt *genType) token.Position { return e.g.pkg.Fset.Position(gt.obj.Pos()) }
	mine := map[string]*genType{}
	for _, d := range e.decls {
		n, gt := d.name, d.gt
		if other := mine[n]; other != nil {
			errs = append(errs, fmt.Sprintf("%s: mpgen would declare %s for both %s and %s; use -prefix",
				pos(gt), n, other.obj.Name(), gt.obj.Name()))
		}
		mine[n] = gt
		if p, ok := e.g.target.decls[n]; ok {
			errs = append(errs, fmt.Sprintf("%s: %s is declared here, and mpgen generates it for %s; rename it or use -prefix",
				p, n, gt.obj.Name()))
		}
		for _, s := range e.siblings {
			for _, o := range s.decls {
				if o.name == n {
					errs = append(errs, fmt.Sprintf("%s: mpgen would declare %s in package %s for both %s and %s: run mpgen once for each package, with -o and its own -prefix",
						pos(gt), n, e.g.target.name, e.g.pkg.Name+"."+gt.obj.Name(), s.g.pkg.Name+"."+o.gt.obj.Name()))
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// locals chooses Go names for the parameters of m in a generated body.
func (e *emitter) locals(m *method) []string {
	taken := map[string]bool{}
	for _, p := range m.params {
		taken[p.goName] = true
	}
	out := make([]string, len(m.params))
	for i, p := range m.params {
		n := p.goName
		if e.reserved[n] {
			for n += "_"; e.reserved[n] || taken[n]; n += "_" {
			}
			taken[n] = true
		}
		out[i] = n
	}
	return out
}

// signature prints the parameters and results of m with the given names.
func (e *emitter) signature(m *method, names []string) string {
	var ps []string
	if m.hasCtx {
		ps = append(ps, "ctx "+e.pkg("context")+".Context")
	}
	for i, p := range m.params {
		ps = append(ps, names[i]+" "+e.typ(p.typ))
	}
	res := "error"
	if m.result != nil {
		res = "(" + e.typ(m.result) + ", error)"
	}
	return "(" + strings.Join(ps, ", ") + ") " + res
}

// proxy writes the typed proxy of interface gt.
func (e *emitter) proxy(gt *genType) {
	name := e.ident(gt, "Proxy")
	bridge := e.pkg(bridgePath)
	e.p("\n// %s calls the methods of a remote %s.\n", name, e.goType(gt))
	e.p("type %s struct{ r *%s.Remote }\n\n", name, bridge)
	e.p("// BridgeRemote implements bridge.Proxy.\n")
	e.p("func (p %s) BridgeRemote() *%s.Remote { return p.r }\n", name, bridge)
	hasClose := false
	for _, m := range gt.methods {
		hasClose = hasClose || m.goName == "Close"
	}
	if !hasClose {
		e.p("\n// Close gives back the reference to the remote object.\n")
		e.p("func (p %s) Close() error { return p.r.Close() }\n", name)
	}
	for _, m := range gt.methods {
		names := e.locals(m)
		e.p("\n")
		if m.goName == "Close" {
			e.p("// Close calls the remote Close and gives back the reference to the\n// remote object.\n")
		}
		e.p("func (p %s) %s%s {\n", name, m.goName, e.signature(m, names))
		if m.goName == "Close" {
			e.p("defer p.r.Close()\n")
		}
		e.callBody(gt, m, names, "p.r")
		e.p("}\n")
	}
}

// callBody writes the body of a proxy method or func: the params struct,
// the call through r, and the return.
func (e *emitter) callBody(gt *genType, m *method, names []string, r string) {
	ctx := "ctx"
	if !m.hasCtx {
		ctx = e.pkg("context") + ".Background()"
	}
	params := "nil"
	if len(m.params) > 0 {
		e.p("params := struct {\n")
		for _, p := range m.params {
			e.p("%s %s `json:%q`\n", fieldName(p.wire), e.typ(p.typ), p.wire)
		}
		e.p("}{%s}\n", strings.Join(names, ", "))
		params = "&params"
	}
	wire := strconv.Quote(gt.wire + "." + m.wire)
	if m.result == nil {
		e.p("return %s.Call(%s, %s, %s, nil)\n", r, ctx, wire, params)
		return
	}
	e.p("var res %s\n", e.typ(m.result))
	e.p("err := %s.Call(%s, %s, %s, &res)\n", r, ctx, wire, params)
	e.p("return res, err\n")
}

// funcProxy writes the constructor of the func that calls a remote func
// of type gt.
func (e *emitter) funcProxy(gt *genType) {
	name := e.ident(gt, "Proxy")
	m := gt.methods[0]
	names := e.locals(m)
	e.p("\n// %s returns a %s that calls a remote one.\n", name, e.goType(gt))
	e.p("func %s(r *%s.Remote) %s {\n", name, e.pkg(bridgePath), e.goType(gt))
	e.p("return func%s {\n", e.signature(m, names))
	e.callBody(gt, m, names, "r")
	e.p("}\n}\n")
}

// funcObject writes the dispatcher of func type gt.
func (e *emitter) funcObject(gt *genType) {
	name := e.ident(gt, "Object")
	fn := e.goType(gt)
	bridge := e.pkg(bridgePath)
	wire := strconv.Quote(gt.wire)
	e.p("\n// %s serves a local %s.\n", name, fn)
	e.p("type %s struct{ impl %s }\n\n", name, fn)
	e.p("// Interface implements bridge.Object.\n")
	e.p("func (o *%s) Interface() string { return %s }\n\n", name, wire)
	e.p("// InterfaceType reports the Go func type served, for discovery.\n")
	e.p("func (o *%s) InterfaceType() %s.Type { return %s.TypeFor[%s]() }\n\n", name, e.pkg("reflect"), e.pkg("reflect"), fn)
	e.p("// Unwrap returns the local func, which a handle coming back decodes to.\n")
	e.p("func (o *%s) Unwrap() any { return o.impl }\n\n", name)
	e.p("// Call implements bridge.Object.\n")
	e.p("func (o *%s) Call(ctx %s.Context, method string, p *%s.Params) (any, error) {\n", name, e.pkg("context"), bridge)
	e.p("if method != %q {\n", gt.methods[0].wire)
	e.p("return nil, %s.Errorf(%s.CodeMethodNotFound, \"method not found: %%s has no method %%q\", %s, method)\n}\n", bridge, bridge, wire)
	e.dispatch(gt.methods[0], "o.impl")
	e.p("}\n")
}

// fieldName makes an exported struct field name of a wire name.
func fieldName(wire string) string {
	r := []rune(wire)
	r[0] = unicode.ToUpper(r[0])
	if !unicode.IsUpper(r[0]) { // a letter without case
		return "X_" + wire
	}
	return string(r)
}

// object writes the dispatcher of interface gt.
func (e *emitter) object(gt *genType) {
	name := e.ident(gt, "Object")
	iface := e.goType(gt)
	bridge := e.pkg(bridgePath)
	ctxPkg := e.pkg("context")
	wire := strconv.Quote(gt.wire)
	e.p("\n// %s serves a local %s.\n", name, iface)
	e.p("type %s struct{ impl %s }\n\n", name, iface)
	e.p("// Interface implements bridge.Object.\n")
	e.p("func (o *%s) Interface() string { return %s }\n\n", name, wire)
	e.p("// InterfaceType reports the Go interface served, for discovery.\n")
	e.p("func (o *%s) InterfaceType() %s.Type { return %s.TypeFor[%s]() }\n\n", name, e.pkg("reflect"), e.pkg("reflect"), iface)
	e.p("// Unwrap returns the local value, which a handle coming back decodes to.\n")
	e.p("func (o *%s) Unwrap() any { return o.impl }\n\n", name)
	if gt.serial {
		e.p("// Serial makes the bridge serve the calls of an object one at a time.\n")
		e.p("func (o *%s) Serial() bool { return true }\n\n", name)
	}
	e.p("// Close closes the local value, if it has a Close method, once the peer\n// has released its last reference.\n")
	e.p("func (o *%s) Close() error {\n", name)
	e.p("switch c := any(o.impl).(type) {\ncase interface{ Close() error }:\nreturn c.Close()\n")
	e.p("case interface{ Close() }:\nc.Close()\n}\nreturn nil\n}\n\n")
	e.p("// Call implements bridge.Object.\n")
	e.p("func (o *%s) Call(ctx %s.Context, method string, p *%s.Params) (any, error) {\n", name, ctxPkg, bridge)
	e.p("switch method {\n")
	for _, m := range gt.methods {
		e.p("case %q:\nreturn o.call%s(ctx, p)\n", m.wire, m.goName)
	}
	e.p("}\n")
	e.p("return nil, %s.Errorf(%s.CodeMethodNotFound, \"method not found: %%s has no method %%q\", %s, method)\n}\n", bridge, bridge, wire)
	// One function per method keeps the stack frame of each call small:
	// every call starts on a fresh goroutine.
	for _, m := range gt.methods {
		e.p("\nfunc (o *%s) call%s(ctx %s.Context, p *%s.Params) (any, error) {\n", name, m.goName, ctxPkg, bridge)
		e.dispatch(m, "o.impl."+m.goName)
		e.p("}\n")
	}
}

// dispatch writes the body of one case of Call: decode, call, encode.
func (e *emitter) dispatch(m *method, fn string) {
	names := e.locals(m)
	for i, p := range m.params {
		e.p("var %s %s\n", names[i], e.typ(p.typ))
		if _, ptr := types.Unalias(p.typ).Underlying().(*types.Pointer); ptr {
			e.p("if _, err := p.DecodeOptional(%q, &%s); err != nil {\nreturn nil, err\n}\n", p.wire, names[i])
		} else {
			e.p("if err := p.Decode(%q, &%s); err != nil {\nreturn nil, err\n}\n", p.wire, names[i])
		}
	}
	e.p("if err := p.CheckUnused(); err != nil {\nreturn nil, err\n}\n")
	args := names
	if m.hasCtx {
		args = append([]string{"ctx"}, names...)
	}
	call := fn + "(" + strings.Join(args, ", ") + ")"
	if m.result == nil {
		e.p("return nil, %s\n", call)
		return
	}
	e.p("res, err := %s\n", call)
	e.p("if err != nil {\nreturn nil, err\n}\n")
	switch types.Unalias(m.result).Underlying().(type) {
	case *types.Interface, *types.Signature, *types.Struct, *types.Slice, *types.Map, *types.Array:
		// A pointer keeps the static type, so that an interface value is
		// exported as the declared interface.
		e.p("return &res, nil\n")
	default:
		e.p("return res, nil\n")
	}
}

// openRPC writes the OpenRPC description of gt and its accessor.
func (e *emitter) openRPC(gt *genType) {
	if !exported(gt) {
		return
	}
	konst := e.ident(gt, "OpenRPC")
	kind := "interface"
	if gt.isFunc {
		kind = "func type"
	}
	e.p("\n// OpenRPC%s returns the OpenRPC method objects that rpc.discover lists\n", gt.obj.Name())
	e.p("// for the %s %s, as a JSON array.\n", kind, e.goType(gt))
	e.p("func OpenRPC%s() []byte { return []byte(%s) }\n\n", gt.obj.Name(), konst)
	doc := e.g.openRPC(gt)
	lit := "`" + doc + "`"
	if strings.Contains(doc, "`") {
		lit = strconv.Quote(doc)
	}
	e.p("const %s = %s\n", konst, lit)
}

// register writes the init function that registers every generated type.
func (e *emitter) register(order []*genType) {
	cb := e.pkg(callbacksPath)
	e.p("\nfunc init() {\n")
	for _, gt := range order {
		iface := e.goType(gt)
		bridge := e.pkg(bridgePath)
		if gt.isFunc {
			var ws []string
			for _, p := range gt.methods[0].params {
				ws = append(ws, strconv.Quote(p.wire))
			}
			e.p("%s.RegisterFuncType(%s.Func[%s]{\n", cb, cb, iface)
			e.p("Name: %q,\n", gt.wire)
			if len(ws) > 0 {
				e.p("Params: []string{%s},\n", strings.Join(ws, ", "))
			}
			e.p("Proxy: %s,\n", e.ident(gt, "Proxy"))
			e.p("Dispatch: func(impl %s) %s.Object { return &%s{impl} },\n", iface, bridge, e.ident(gt, "Object"))
			if gt.doc != "" {
				e.p("Doc: %s,\n", strconv.Quote(gt.doc))
			}
			e.p("})\n")
			continue
		}
		e.p("%s.Register(%s.Interface[%s]{\n", cb, cb, iface)
		e.p("Name: %q,\n", gt.wire)
		var params []string
		for _, m := range gt.methods {
			if len(m.params) == 0 {
				continue
			}
			var ws []string
			for _, p := range m.params {
				ws = append(ws, strconv.Quote(p.wire))
			}
			params = append(params, fmt.Sprintf("%q: {%s},\n", m.goName, strings.Join(ws, ", ")))
		}
		if len(params) > 0 {
			e.p("Params: map[string][]string{\n%s},\n", strings.Join(params, ""))
		}
		e.p("Proxy: func(r *%s.Remote) %s { return %s{r} },\n", bridge, iface, e.ident(gt, "Proxy"))
		e.p("Dispatch: func(impl %s) %s.Object { return &%s{impl} },\n", iface, bridge, e.ident(gt, "Object"))
		if gt.serial {
			e.p("Serial: true,\n")
		}
		if gt.doc != "" {
			e.p("Doc: %s,\n", strconv.Quote(gt.doc))
		}
		var docs []string
		for _, m := range gt.methods {
			if m.doc != "" {
				docs = append(docs, fmt.Sprintf("%q: %s,\n", m.goName, strconv.Quote(m.doc)))
			}
		}
		if len(docs) > 0 {
			e.p("Docs: map[string]string{\n%s},\n", strings.Join(docs, ""))
		}
		e.p("})\n")
	}
	e.p("}\n")
}
