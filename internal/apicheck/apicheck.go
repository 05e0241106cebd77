// Package apicheck lists the exported API of a package as one system builds
// it, from its source, so that tests can check that a package offers the
// same API on every GOOS (and returns errors.ErrUnsupported where it cannot
// do the work, rather than being absent).
//
// The list is read from the syntax of the files go/build selects for the
// system: names, kinds, signatures (parameter names left out), exported
// fields and interface methods, and the values of constants and variables
// as written. It does not type-check: `GOOS=... go vet` does that.
package apicheck

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
)

// OtherSystems are the systems whose API the tests compare with Linux's:
// those the project builds and vets for in CI (.ci/run).
var OtherSystems = []string{"aix", "darwin", "dragonfly", "freebsd", "illumos", "netbsd", "openbsd", "solaris", "windows"}

// API returns the exported API of the package in dir as built for goos
// (and goarch, without cgo), one declaration a line, sorted: for example
//
//	func Dial(context.Context, string, string) (*Worker, error)
//	method (*Worker) Close() error
//	type Config struct
//	field Config.Roles map[string]Policy
//	const RestartNever RestartPolicy = iota
func API(dir, goos, goarch string) ([]string, error) {
	ctx := build.Default
	ctx.GOOS, ctx.GOARCH = goos, goarch
	ctx.CgoEnabled = false
	pkg, err := ctx.ImportDir(dir, 0)
	if err != nil {
		return nil, fmt.Errorf("apicheck: %s for %s/%s: %w", dir, goos, goarch, err)
	}
	fset := token.NewFileSet()
	var api []string
	for _, name := range pkg.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("apicheck: %w", err)
		}
		// Parameter names are not API: drop them everywhere, in function
		// types within signatures too.
		ast.Inspect(f, func(n ast.Node) bool {
			if t, ok := n.(*ast.FuncType); ok {
				t.Params, t.Results = unnamed(t.Params), unnamed(t.Results)
			}
			return true
		})
		for _, d := range f.Decls {
			api = append(api, decl(d)...)
		}
	}
	slices.Sort(api)
	return api, nil
}

// decl lists the exported API that d declares.
func decl(d ast.Decl) []string {
	var out []string
	switch d := d.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() {
			break
		}
		if d.Recv == nil {
			out = append(out, "func "+d.Name.Name+signature(d.Type))
			break
		}
		recv := d.Recv.List[0].Type
		if base := baseType(recv); base == "" || !ast.IsExported(base) {
			break
		}
		out = append(out, "method ("+node(recv)+") "+d.Name.Name+signature(d.Type))
	case *ast.GenDecl:
		var typ, val ast.Expr // carried over in a const group, as the compiler does
		for i, s := range d.Specs {
			switch s := s.(type) {
			case *ast.TypeSpec:
				out = append(out, typeSpec(s)...)
			case *ast.ValueSpec:
				if d.Tok == token.CONST && s.Type == nil && len(s.Values) == 0 {
					// Implicit repetition of the previous spec.
				} else {
					typ, val = s.Type, nil
					if len(s.Values) > 0 {
						val = s.Values[0]
					}
				}
				for j, n := range s.Names {
					if !n.IsExported() {
						continue
					}
					line := d.Tok.String() + " " + n.Name
					if typ != nil {
						line += " " + node(typ)
					}
					if j < len(s.Values) {
						line += " = " + node(s.Values[j])
					} else if val != nil && d.Tok == token.CONST {
						line += fmt.Sprintf(" = %s (spec %d)", node(val), i)
					}
					out = append(out, line)
				}
			}
		}
	}
	return out
}

// typeSpec lists an exported type: its kind, and its exported fields or
// methods.
func typeSpec(s *ast.TypeSpec) []string {
	if !s.Name.IsExported() {
		return nil
	}
	name := s.Name.Name
	head := "type " + name
	if s.TypeParams != nil {
		head += node(s.TypeParams)
	}
	if s.Assign.IsValid() {
		return []string{head + " = " + node(s.Type)}
	}
	switch t := s.Type.(type) {
	case *ast.StructType:
		out := []string{head + " struct"}
		for _, f := range t.Fields.List {
			if len(f.Names) == 0 { // embedded
				if base := baseType(f.Type); ast.IsExported(base) {
					out = append(out, "field "+name+"."+base+" embedded "+node(f.Type))
				}
				continue
			}
			for _, n := range f.Names {
				if n.IsExported() {
					out = append(out, "field "+name+"."+n.Name+" "+node(f.Type)+tag(f))
				}
			}
		}
		return out
	case *ast.InterfaceType:
		out := []string{head + " interface"}
		for _, m := range t.Methods.List {
			if len(m.Names) == 0 {
				out = append(out, "embeds "+name+" "+node(m.Type))
				continue
			}
			for _, n := range m.Names {
				if n.IsExported() {
					out = append(out, "method "+name+"."+n.Name+signature(m.Type.(*ast.FuncType)))
				}
			}
		}
		return out
	case *ast.FuncType:
		return []string{head + " func" + signature(t)}
	}
	return []string{head + " " + node(s.Type)}
}

func tag(f *ast.Field) string {
	if f.Tag == nil {
		return ""
	}
	return " " + f.Tag.Value
}

// signature prints a function type's type parameters, parameters and
// results.
func signature(t *ast.FuncType) string {
	bare := &ast.FuncType{Params: t.Params, Results: t.Results}
	s := strings.TrimPrefix(node(bare), "func")
	if t.TypeParams != nil {
		s = node(t.TypeParams) + s
	}
	return s
}

// unnamed is l with one unnamed field per name; nil if l is nil.
func unnamed(l *ast.FieldList) *ast.FieldList {
	if l == nil {
		return nil
	}
	out := &ast.FieldList{}
	for _, f := range l.List {
		n := max(len(f.Names), 1)
		for range n {
			out.List = append(out.List, &ast.Field{Type: f.Type})
		}
	}
	return out
}

// baseType is the name of the type that a receiver or embedded field
// expression names, without pointer or type arguments.
func baseType(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.SelectorExpr:
			return t.Sel.Name
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

// node prints n on one line, without comments. Its positions are left
// out (an empty FileSet), so that line breaks in the source change nothing.
func node(n any) string {
	var b bytes.Buffer
	if err := printer.Fprint(&b, token.NewFileSet(), n); err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
