package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/kiln-network/kiln/work/units"
)

// LocalRanks returns the Dist of each of n ranks on this machine, over loopback only:
// rank 0's rendezvous on 127.0.0.1 at a port free when asked, sockets on "lo".
func LocalRanks(n int) ([]Dist, error) {
	if n < 2 || n > maxWorld {
		return nil, fmt.Errorf("train: %d local ranks, must be 2 to %d", n, maxWorld)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("train: find a free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ds := make([]Dist, n)
	for r := range ds {
		ds[r] = Dist{WorldSize: n, Rank: r, LocalRank: r, MasterAddr: "127.0.0.1", MasterPort: port, Ifname: "lo"}
	}
	return ds, nil
}

// LaunchLocal trains job data-parallel on n ranks of this process over loopback
// (LocalRanks; w.Dist's Timeout applies to each), all writing into dir: rank 0 the
// checkpoints, units.json, job.json and metrics.json, every rank dir/rank-N.json. The job
// must have Shards n. With resume, the run continues from dir's last checkpoint (Resume).
// It returns every rank's report, or every rank's error, joined, when any failed.
func (w Workload) LaunchLocal(ctx context.Context, n int, job units.Job, dir string, resume bool) ([]RankReport, error) {
	ds, err := LocalRanks(n)
	if err != nil {
		return nil, err
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r, d := range ds {
		d.Timeout = w.Dist.Timeout
		rw := w
		rw.Dist = d
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resume {
				errs[r] = rw.Resume(ctx, job, dir, nil)
			} else {
				errs[r] = rw.Run(ctx, job, dir, nil)
			}
			if errs[r] != nil {
				errs[r] = fmt.Errorf("rank %d: %w", r, errs[r])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ReadRankReports(dir, n)
}

// ReadRankReports reads dir/rank-0.json .. rank-(n-1).json.
func ReadRankReports(dir string, n int) ([]RankReport, error) {
	reps := make([]RankReport, n)
	for r := range reps {
		var err error
		if reps[r], err = ReadRankReport(dir, r); err != nil {
			return nil, err
		}
	}
	return reps, nil
}

// ReadRankReport reads dir/rank-N.json, the report of rank.
func ReadRankReport(dir string, rank int) (RankReport, error) {
	var rep RankReport
	b, err := os.ReadFile(filepath.Join(dir, RankFile(rank)))
	if err != nil {
		return rep, fmt.Errorf("train: rank %d's report: %w", rank, err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("train: rank %d's report %s: %w", rank, RankFile(rank), err)
	}
	if rep.Rank != rank {
		return rep, fmt.Errorf("train: %s is rank %d's report", RankFile(rank), rep.Rank)
	}
	return rep, nil
}
