package types

import "testing"

// A table can be created and added to until the hooks are sealed; a nil Hooks is an
// empty sealed table.
func TestHooksSeal(t *testing.T) {
	h := NewHooks()
	h.MustBeOpen("x")
	tbl := h.Table("m", func() any { return &[]string{} }).(*[]string)
	*tbl = append(*tbl, "a")
	if again := h.Table("m", func() any { t.Fatal("created twice"); return nil }).(*[]string); len(*again) != 1 {
		t.Fatalf("Table returned a new table: %v", *again)
	}
	h.Seal()
	if got, ok := h.Lookup("m"); !ok || len(*got.(*[]string)) != 1 {
		t.Fatalf("Lookup after Seal = %v, %v", got, ok)
	}
	var nilHooks *Hooks
	if _, ok := nilHooks.Lookup("m"); ok {
		t.Fatal("nil Hooks has a table")
	}
	for name, f := range map[string]func(){
		"MustBeOpen after Seal":   func() { h.MustBeOpen("late") },
		"new table after Seal":    func() { h.Table("n", func() any { return 1 }) },
		"MustBeOpen on nil Hooks": func() { nilHooks.MustBeOpen("x") },
		"new table on nil Hooks":  func() { nilHooks.Table("n", func() any { return 1 }) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("%s did not panic", name)
				}
			}()
			f()
		})
	}
}
