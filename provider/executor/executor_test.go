package executor

import (
	"strings"
	"testing"
	"time"
)

func TestTaskValidate(t *testing.T) {
	ok := Task{ID: TaskID("lease1", "web", 0), LeaseID: "lease1", Env: []string{"A=b", "EMPTY="}}
	for _, tc := range []struct {
		name   string
		mod    func(*Task)
		errHas string
	}{
		{"valid", func(*Task) {}, ""},
		{"path in id", func(t *Task) { t.ID = "../x" }, "must match"},
		{"empty lease", func(t *Task) { t.LeaseID = "" }, "lease"},
		{"long id", func(t *Task) { t.ID = strings.Repeat("a", 129) }, "must match"},
		{"negative memory", func(t *Task) { t.Resources.MemoryBytes = -1 }, "resources"},
		{"negative time limit", func(t *Task) { t.TimeLimit = -time.Second }, "time limit"},
		{"port out of range", func(t *Task) { t.Ports = []Port{{ContainerPort: 70000}} }, "out of range"},
		{"bad protocol", func(t *Task) { t.Ports = []Port{{ContainerPort: 80, Protocol: "sctp"}} }, "protocol"},
		{"env without =", func(t *Task) { t.Env = []string{"NOVALUE"} }, "KEY=VALUE"},
		{"env without key", func(t *Task) { t.Env = []string{"=v"} }, "KEY=VALUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := ok
			tc.mod(&tk)
			err := tk.Validate()
			if tc.errHas == "" && err != nil || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Errorf("Validate() = %v, want error containing %q", err, tc.errHas)
			}
		})
	}
}

func TestTaskID(t *testing.T) {
	if got, want := TaskID("l7", "web", 2), "l7-web-2"; got != want {
		t.Errorf("TaskID() = %q, want %q", got, want)
	}
}
