package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/x/liveness"
)

func TestRenderChallengesAndScores(t *testing.T) {
	cs := []liveness.Challenge{
		{ID: 3, Kind: liveness.KindLiveness, Provider: provA, Lease: 7, Attempt: 2, Model: "h100", N: 512, IssuedHeight: 40, Deadline: 50,
			State: liveness.StateFailed, Failure: liveness.FailMissed, Slashed: 1_000_000},
		{ID: 4, Kind: liveness.KindHardware, Provider: provB, Model: "cpu", N: 448, IssuedHeight: 41, Deadline: 51,
			State: liveness.StatePassed, ReportedMFLOPS: 950, ChainMFLOPS: 170},
	}
	ss := []liveness.Score{{Provider: provB, Model: "cpu", ExpectedMFLOPS: 500, Challenges: 2, Passed: 1, Failed: 1,
		LastReportedMFLOPS: 950, Flagged: true, FlagHeight: 30, FlagReason: "missed"}}
	tests := []struct {
		name   string
		render func(*cobra.Command, []byte) error
		value  any
		want   []string
	}{
		{"challenges", renderChallenges, map[string]any{"challenges": cs}, []string{
			"ID  KIND", "failed (missed)", "7/2", "h100", "1000000", "passed", "950", "170"}},
		{"scores", renderScores, map[string]any{"scores": ss}, []string{"EXPECTED MFLOPS", "yes, at 30: missed", provB.String()}},
		{"no challenges", renderChallenges, map[string]any{"challenges": []liveness.Challenge{}}, []string{"(none)"}},
	}
	for _, tt := range tests {
		raw, _ := json.Marshal(tt.value)
		var b strings.Builder
		cmd := &cobra.Command{}
		cmd.SetOut(&b)
		if err := tt.render(cmd, raw); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s:\n%s\nwant %q", tt.name, b.String(), w)
			}
		}
	}
}
