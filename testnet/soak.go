package testnet

import (
	"context"
	"fmt"
	"time"
)

// soakScenarios are the perturbations a soak cycles through. Left out: latency (its
// user-space proxies carry all peer traffic, so namespace partitions would not cut
// it), byzantine (the double-signer is tombstoned for good: with one validator gone
// for ever, the next one faulted would halt a 4-validator chain) and statesync (the
// joiner needs a namespace of its own); each has its own scenario.
var soakScenarios = []string{"kill", "pause", "partition", "loss", "skew", "partition-2v2"}

// Perturbation is one fault of a soak.
type Perturbation struct {
	Scenario string `json:"scenario"`
	// Node is the validator faulted (partition-2v2: every one, -1).
	Node int `json:"node"`
	// AtS is when it began, in seconds from the start of the load.
	AtS       float64  `json:"at_s"`
	RecoverS  float64  `json:"recover_s"`
	TPSDuring float64  `json:"tps_during"`
	Problems  []string `json:"problems,omitempty"`
}

// Soak runs one network for o.Duration under load, perturbing it with every soak
// scenario in turn (each for o.Period, the validator faulted rotating, a quiet half
// period after each), then checks the whole history as Run does. RecoverS is the
// slowest recovery; TPSBefore the rate before the first fault, TPSDuring during the
// faults, TPSAfter in the quiet periods.
func Soak(ctx context.Context, o Options) (Result, error) {
	o.Scenario = "soak"
	if err := o.defaults(); err != nil {
		return Result{}, err
	}
	res := Result{Scenario: o.Scenario, Validators: o.Validators}
	n, cleanup, err := setup(ctx, o, &res)
	defer cleanup()
	if err != nil {
		return res, err
	}
	lg, err := newLoad(ctx, n, o.Accounts)
	if err != nil {
		return res, fmt.Errorf("load generator: %w", err)
	}
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	cls := n.clients(n.all())
	go func() { lg.run(lctx, cls); close(loadDone) }()

	t0 := time.Now()
	sleep(ctx, o.Period/2)
	res.TPSBefore = rate(lg.ackedBetween(t0, time.Now()), time.Since(t0))
	var during, quiet time.Duration
	var nDuring, nQuiet int
	for k := 0; time.Since(t0) < o.Duration && ctx.Err() == nil; k++ {
		s := soakScenarios[k%len(soakScenarios)]
		victim := k % o.Validators
		switch s {
		case "skew":
			victim = o.Validators - 1 // the one with the remote signer
		case "partition-2v2":
			victim = -1
		}
		start := time.Now()
		n.logf("soak %d: %s of node%d", k, s, victim)
		fr, err := n.fault(ctx, s, max(victim, 0), o.Period)
		end := time.Now()
		p := Perturbation{Scenario: s, Node: victim, AtS: start.Sub(t0).Seconds(), RecoverS: fr.recover.Seconds(),
			TPSDuring: rate(lg.ackedBetween(start, end), end.Sub(start)), Problems: fr.problems}
		if err != nil {
			p.Problems = append(p.Problems, err.Error())
		}
		res.Perturbations = append(res.Perturbations, p)
		res.RecoverS = max(res.RecoverS, p.RecoverS)
		res.PacketsDropped += fr.dropped
		for _, pr := range p.Problems {
			res.Problems = append(res.Problems, fmt.Sprintf("soak %d (%s of node%d): %s", k, s, victim, pr))
		}
		during += end.Sub(start)
		nDuring += lg.ackedBetween(start, end)
		if err != nil {
			break // the network did not recover: what follows would measure nothing
		}
		q := time.Now()
		sleep(ctx, o.Period/2)
		quiet += time.Since(q)
		nQuiet += lg.ackedBetween(q, time.Now())
	}
	stopLoad()
	<-loadDone
	n.logf("load stopped: %d txs sent in %v, %d perturbations", len(lg.recs), time.Since(t0).Round(time.Second), len(res.Perturbations))
	res.TPSDuring, res.TPSAfter = rate(nDuring, during), rate(nQuiet, quiet)
	return res, n.settleAndCheck(ctx, lg, n.all(), &res)
}
