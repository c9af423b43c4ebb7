package executor

import (
	"errors"
	"strings"
	"testing"
)

type fakeSettings struct{ err error }

func (f fakeSettings) Decode(any) error { return f.err }

func TestRegistry(t *testing.T) {
	built := 0
	f := Factory{
		Check: func(s Settings) error { return s.Decode(nil) },
		New: func(p Params) (Executor, error) {
			built++
			if err := p.Settings.Decode(nil); err != nil {
				return nil, err
			}
			return nil, nil
		},
	}
	Register("test-kind", f)
	if !strings.Contains(strings.Join(Kinds(), ","), "test-kind") {
		t.Errorf("Kinds() = %v, want test-kind listed", Kinds())
	}
	bad := errors.New("key: must be set")
	if err := Check("test-kind", fakeSettings{bad}); !errors.Is(err, bad) {
		t.Errorf("Check(bad settings) = %v, want the executor's error", err)
	}
	if err := Check("test-kind", nil); err != nil {
		t.Errorf("Check(no settings) = %v, want nil", err)
	}
	if _, err := New("test-kind", Params{}); err != nil || built != 1 {
		t.Errorf("New() = %v after %d builds, want one build with NoSettings", err, built)
	}
	for _, kind := range []string{"no-such-kind", ""} {
		if err := Check(kind, nil); err == nil || !strings.Contains(err.Error(), "test-kind") {
			t.Errorf("Check(%q) = %v, want an error listing the registered kinds", kind, err)
		}
		if _, err := New(kind, Params{}); err == nil {
			t.Errorf("New(%q) = nil error", kind)
		}
	}
	for name, reg := range map[string]func(){
		"twice":    func() { Register("test-kind", f) },
		"no kind":  func() { Register("", f) },
		"no New":   func() { Register("other", Factory{Check: f.Check}) },
		"no Check": func() { Register("other", Factory{New: f.New}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register %s did not panic", name)
				}
			}()
			reg()
		}()
	}
}
