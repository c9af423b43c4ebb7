package types

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Every result code declared here has a row in README's table of refusals, and
// each code has its own sentinel: a code users meet must be one they can look up.
func TestEveryCodeDocumented(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]uint64{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Code") {
			return true
		}
		if lit, ok := vs.Values[0].(*ast.BasicLit); ok && lit.Kind == token.INT {
			v, _ := strconv.ParseUint(lit.Value, 10, 32)
			codes[vs.Names[0].Name] = v
		}
		return true
	})
	if len(codes) < 25 {
		t.Fatalf("found %d result codes in errors.go, want the 25 of CodeOK..CodeInvalidCert at least", len(codes))
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The table starts at its "| code | refusal |" header; each row holds one or more
	// code/refusal cell pairs.
	documented := map[uint64]string{}
	_, table, _ := strings.Cut(string(readme), "\n| code | refusal |")
	for _, line := range strings.Split(table, "\n")[1:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := 0; i+1 < len(cells); i += 2 {
			if code, err := strconv.ParseUint(strings.TrimSpace(cells[i]), 10, 32); err == nil {
				documented[code] = strings.TrimSpace(cells[i+1])
			}
		}
	}
	for name, code := range codes {
		if code != uint64(CodeOK) && documented[code] == "" {
			t.Errorf("%s = %d has no row in README's table of refusals", name, code)
		}
	}
}
