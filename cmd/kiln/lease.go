package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/api/apiclient"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// leaseEnv opens what the lease commands need: the tenant key (--from), the chain
// client and, if provider is true, an mTLS client for the lease's provider.
type leaseEnv struct {
	key   ed25519.PrivateKey
	owner types.Address
	c     *client.Client
	lease market.Lease
	pc    *apiclient.Client
}

func openLease(cmd *cobra.Command, idArg string, provider bool) (*leaseEnv, error) {
	id, err := strconv.ParseUint(idArg, 10, 64)
	if err != nil || id == 0 {
		return nil, usagef("lease id %q: want a positive integer", idArg)
	}
	e := &leaseEnv{}
	if e.c, err = newClient(cmd); err != nil {
		return nil, err
	}
	if e.lease, err = e.c.Lease(cmd.Context(), id); err != nil {
		return nil, fmt.Errorf("lease %d: %w", id, err)
	}
	from, _ := cmd.Flags().GetString("from")
	if from == "" {
		return nil, usagef("--from KEY is required")
	}
	kr, err := openKeyring(cmd)
	if err != nil {
		return nil, err
	}
	if e.key, _, err = kr.PrivKey(from); err != nil {
		return nil, err
	}
	e.owner = types.AddressFromPubKey(e.key.Public().(ed25519.PublicKey))
	if provider {
		if e.pc, err = tenant.ConnectAs(cmd.Context(), e.c, e.key, certDir(cmd), e.lease.Provider); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// providerStatusErr is lease status's failure when the provider could not say how the
// lease runs: the chain's part is printed, and the command exits 1.
func providerStatusErr(l market.Lease, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: 1, err: fmt.Errorf("no status from provider %s: %w", l.Provider, err)}
}

func leaseFlags(cmd *cobra.Command) *cobra.Command {
	addKeyringFlags(cmd)
	addNodeFlags(cmd)
	cmd.Flags().String("from", "", "the lease owner's key")
	return cmd
}

func newLeaseCmd() *cobra.Command {
	l := &cobra.Command{Use: "lease", Short: "Your leases: list, status, logs, close"}
	list := &cobra.Command{
		Use:   "list",
		Short: "Leases owned by --from (or every lease with --all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			f := market.LeaseFilter{}
			if all, _ := cmd.Flags().GetBool("all"); !all {
				from, _ := cmd.Flags().GetString("from")
				if from == "" {
					return usagef("--from KEY (or --all) is required")
				}
				kr, err := openKeyring(cmd)
				if err != nil {
					return err
				}
				info, err := kr.Show(from)
				if err != nil {
					return err
				}
				f.Owner = info.Address
			}
			if st, _ := cmd.Flags().GetString("state"); st != "" {
				f.State = st
			}
			leases, err := c.Leases(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"leases": market.ShowLeases(leases)})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tPROVIDER\tPRICE/BLOCK\tSTATE\tREASON\tCREATED")
			for _, x := range leases {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%d\n", x.ID, x.Kind, x.Provider, x.Price, x.State, x.CloseReason, x.CreatedHeight)
			}
			return tw.Flush()
		},
	}
	leaseFlags(list)
	list.Flags().Bool("all", false, "every lease, not only yours")
	list.Flags().String("state", "", "only leases in this state (active, closed)")

	status := leaseFlags(&cobra.Command{
		Use:   "status ID",
		Short: "A lease's state on chain and on its provider (a cluster's: every member's)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if handled, err := clusterStatus(cmd, args[0]); handled {
				return err
			}
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			e, err := openLease(cmd, args[0], false)
			if err != nil {
				return err
			}
			// NB: a provider that cannot be reached still leaves the chain's view to show.
			var st api.LeaseStatus
			pc, perr := tenant.ConnectAs(cmd.Context(), e.c, e.key, certDir(cmd), e.lease.Provider)
			if perr == nil {
				defer pc.Close()
				st, perr = pc.Status(cmd.Context(), e.lease.ID)
			}
			if asJSON {
				out := map[string]any{"chain": market.ShowLease(e.lease)}
				if perr == nil {
					out["provider"] = st
				} else {
					out["provider_error"] = perr.Error()
				}
				if err := printJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
				return providerStatusErr(e.lease, perr)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "lease %d (%s) with %s: %s on chain", e.lease.ID, e.lease.Kind, e.lease.Provider, e.lease.State)
			if e.lease.CloseReason != "" {
				fmt.Fprintf(w, " (%s at height %d)", e.lease.CloseReason, e.lease.ClosedHeight)
			}
			fmt.Fprintln(w)
			if e.lease.OutputHash != "" {
				fmt.Fprintf(w, "outputs root on chain: %s\n", e.lease.OutputHash)
			}
			if perr != nil {
				return providerStatusErr(e.lease, perr)
			}
			fmt.Fprintf(w, "provider: %s\n", st.State)
			if st.Error != "" {
				fmt.Fprintf(w, "provider error: %s\n", st.Error)
			}
			for _, t := range st.Tasks {
				fmt.Fprintf(w, "  task %s: %s", t.ID, t.State)
				if t.ExitCode != nil {
					fmt.Fprintf(w, " (exit %d)", *t.ExitCode)
				}
				if t.Error != "" {
					fmt.Fprintf(w, ": %s", t.Error)
				}
				fmt.Fprintln(w)
			}
			for _, o := range st.Outputs {
				fmt.Fprintf(w, "  output %s  %d bytes  sha256 %s\n", o.Name, o.Size, o.SHA256)
			}
			for _, sk := range st.Skipped {
				fmt.Fprintf(w, "  skipped %q: %s\n", sk.Name, sk.Reason)
			}
			if n := st.SkippedTotal - len(st.Skipped); n > 0 {
				fmt.Fprintf(w, "  skipped %d more\n", n)
			}
			return nil
		},
	})

	logs := leaseFlags(&cobra.Command{
		Use:   "logs ID",
		Short: "A lease's logs from its provider (-f to follow)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openLease(cmd, args[0], true)
			if err != nil {
				return err
			}
			defer e.pc.Close()
			follow, _ := cmd.Flags().GetBool("follow")
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			rc, err := e.pc.Logs(ctx, e.lease.ID, api.LogSelector{}, follow)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(cmd.OutOrStdout(), rc)
			if ctx.Err() != nil {
				return nil
			}
			return err
		},
	})
	logs.Flags().BoolP("follow", "f", false, "keep streaming until the lease ends or Ctrl-C")

	closeCmd := leaseFlags(&cobra.Command{
		Use:   "close ID",
		Short: "Close a lease (tenant or provider only); the unused escrow is refunded in the same block",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			e, err := openLease(cmd, args[0], false)
			if err != nil {
				return err
			}
			res, err := e.c.Send(cmd.Context(), e.key, client.SignOptions{}, &market.MsgCloseLease{Sender: e.owner, LeaseID: e.lease.ID})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lease %d closed at height %d\n", e.lease.ID, res.Height)
			return nil
		},
	})
	l.AddCommand(list, status, logs, closeCmd)
	return l
}

func newFetchCmd() *cobra.Command {
	cmd := leaseFlags(&cobra.Command{
		Use:   "fetch ID",
		Short: "Download a batch lease's outputs, checked against the Merkle root its provider committed on chain",
		Long: `Download a batch lease's outputs from its provider into a new directory named for the
lease (lease-ID), or --out DIR. The provider's listing must have the Merkle root committed
on chain when the lease completed, and every file must hash to its entry; files are moved
into place only once all are verified. Nothing is overwritten without --force.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			e, err := openLease(cmd, args[0], true)
			if err != nil {
				return err
			}
			defer e.pc.Close()
			pr := newProgress(cmd.ErrOrStderr())
			defer pr.Done()
			o := tenant.FetchOptions{Progress: pr.Step}
			if !asJSON {
				o.Transfer = pr.Transfer // NB: quiet off a terminal too (progress.Transfer)
			}
			o.Dir, _ = cmd.Flags().GetString("out")
			o.Force, _ = cmd.Flags().GetBool("force")
			o.Unverified, _ = cmd.Flags().GetBool("unverified")
			o.Wait, _ = cmd.Flags().GetDuration("wait")
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			r, err := tenant.Fetch(ctx, e.c, e.pc, e.lease.ID, o)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), r)
			}
			w := cmd.OutOrStdout()
			check := "verified against the root committed on chain at height " + strconv.FormatInt(r.CommittedHeight, 10)
			if !r.Verified {
				check = "UNVERIFIED (checked only against the provider's hashes)"
			}
			fmt.Fprintf(w, "lease %d: %d outputs in %s, %s\n", r.LeaseID, len(r.Files), r.Dir, check)
			for _, f := range r.Files {
				fmt.Fprintf(w, "  %s  %d bytes  sha256 %s\n", filepath.Join(r.Dir, f.Name), f.Size, f.SHA256)
			}
			if u := r.Units; u != nil && u.Commitment != 0 {
				fmt.Fprintf(w, "units.json: %d units, Merkle root %s, as committed for verification (commitment %d, %s)\n", u.Count, u.Root, u.Commitment, u.State)
			} else if u != nil {
				fmt.Fprintf(w, "units.json: %d units, Merkle root %s, not committed for verification\n", u.Count, u.Root)
			}
			return nil
		},
	})
	cmd.Flags().String("out", "", "directory for the outputs (default: a new directory lease-ID)")
	cmd.Flags().Bool("force", false, "replace files of the same names already in the directory")
	cmd.Flags().Bool("unverified", false, "fetch the outputs of a lease not completed on chain, checked only against the provider's own hashes")
	cmd.Flags().Duration("wait", 0, "wait this long for the lease to complete on chain (always up to 1m once the provider has sealed the outputs)")
	return cmd
}
