package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/x/market"
)

// printClusters prints what kiln deploy did for cluster orders.
func printClusters(cmd *cobra.Command, asJSON bool, cs []tenant.ClusterResult) error {
	if asJSON {
		if len(cs) == 1 {
			return printJSON(cmd.OutOrStdout(), cs[0])
		}
		return printJSON(cmd.OutOrStdout(), cs)
	}
	w := cmd.OutOrStdout()
	for _, c := range cs {
		fmt.Fprintf(w, "cluster %d: %s, %d members on %d providers, order -> placed %d ms, -> all ranks running %d ms\n",
			c.OrderID, c.State, len(c.Members), c.Providers, c.OrderToPlacedMS, c.OrderToAllRunningMS)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RANK\tLEASE\tPROVIDER\tSTATE\tOUTPUTS\tDIR")
		for _, m := range c.Members {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%s\n", m.Rank, m.Lease, m.Provider, m.State, m.Outputs, m.OutDir)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// memberStatus is one member's part of `kiln lease status` for a cluster: what the
// chain records and what its provider says.
type memberStatus struct {
	market.Member
	Provider      *api.LeaseStatus `json:"provider_status,omitempty"`
	ProviderError string           `json:"provider_error,omitempty"`
}

// clusterStatus prints cluster id's members, their providers, ranks, overlay
// endpoints and states, and each provider's view of its member; handled is false
// when id is no placed cluster (an ordinary lease).
func clusterStatus(cmd *cobra.Command, idArg string) (handled bool, err error) {
	var id uint64
	if _, err := fmt.Sscan(idArg, &id); err != nil || id == 0 {
		return false, nil // NB: openLease says what is wrong with it
	}
	c, err := newClient(cmd)
	if err != nil {
		return false, err
	}
	cl, err := c.Cluster(cmd.Context(), id)
	if errors.Is(err, client.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("cluster %d: %w", id, err)
	}
	asJSON, err := outputJSON(cmd)
	if err != nil {
		return true, err
	}
	from, _ := cmd.Flags().GetString("from")
	if from == "" {
		return true, usagef("--from KEY is required")
	}
	kr, err := openKeyring(cmd)
	if err != nil {
		return true, err
	}
	key, _, err := kr.PrivKey(from)
	if err != nil {
		return true, err
	}
	var ms []memberStatus
	failed := 0
	for _, m := range cl.Members {
		s := memberStatus{Member: m}
		if m.Provider.IsZero() {
			ms = append(ms, s)
			continue
		}
		pc, perr := tenant.ConnectAs(cmd.Context(), c, key, certDir(cmd), m.Provider)
		if perr == nil {
			st, serr := pc.Status(cmd.Context(), m.Lease)
			pc.Close()
			if perr = serr; serr == nil {
				s.Provider = &st
			}
		}
		if perr != nil {
			s.ProviderError = perr.Error()
			failed++
		}
		ms = append(ms, s)
	}
	var done error
	if failed > 0 {
		done = &exitError{code: 1, err: fmt.Errorf("%d of %d members' providers gave no status", failed, len(ms))}
	}
	if asJSON {
		if err := printJSON(cmd.OutOrStdout(), map[string]any{"cluster": cl, "members": ms}); err != nil {
			return true, err
		}
		return true, done
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "cluster %d: %s on chain, epoch %d, on member failure %s", cl.ID, cl.State, cl.Epoch, cl.Policy)
	if cl.RunningHeight != 0 {
		fmt.Fprintf(w, ", every rank running since height %d", cl.RunningHeight)
	}
	if cl.CloseReason != "" {
		fmt.Fprintf(w, " (%s at height %d)", cl.CloseReason, cl.ClosedHeight)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tLEASE\tPROVIDER\tCHAIN\tON PROVIDER\tOVERLAY ENDPOINT\tOVERLAY HEALTH\tPUBLIC KEY")
	for _, m := range ms {
		on, health := m.ProviderError, "-"
		if m.Provider != nil {
			on = m.Provider.State
			if ov := m.Provider.Overlay; ov != nil {
				health = overlayHealth(ov, time.Now())
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Rank, m.Lease, m.Member.Provider, m.State, on, orDash(m.Endpoint), health, orDash(m.PublicKey))
	}
	if err := tw.Flush(); err != nil {
		return true, err
	}
	return true, done
}

// overlayHealth sums up a member's overlay link: its address, how many peers
// completed a handshake, the oldest of those handshakes and the bytes moved.
func overlayHealth(ov *api.OverlayStatus, now time.Time) string {
	up := 0
	var oldest time.Time
	var rx, tx uint64
	for _, p := range ov.Peers {
		rx, tx = rx+p.RxBytes, tx+p.TxBytes
		if p.LastHandshake.IsZero() {
			continue
		}
		up++
		if oldest.IsZero() || p.LastHandshake.Before(oldest) {
			oldest = p.LastHandshake
		}
	}
	s := fmt.Sprintf("%s, %d/%d peers up", ov.Addr, up, len(ov.Peers))
	if !oldest.IsZero() {
		s += fmt.Sprintf(" (oldest handshake %s ago)", now.Sub(oldest).Round(time.Second))
	}
	return s + fmt.Sprintf(", rx %d B, tx %d B", rx, tx)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
