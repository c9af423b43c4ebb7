package main

import (
	"fmt"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/tenant"
)

func certDir(cmd *cobra.Command) string { return filepath.Join(homeFlag(cmd), "certs") }

func newDeployCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy SPEC.yaml",
		Short: "Deploy a Kiln spec or an Akash SDL file: order, lease, manifest, inputs, and for a batch job its outputs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			plans, warnings, err := tenant.Load(args[0])
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if err != nil {
				return err
			}
			from, _ := cmd.Flags().GetString("from")
			if from == "" {
				return usagef("--from KEY is required")
			}
			kr, err := openKeyring(cmd)
			if err != nil {
				return err
			}
			key, _, err := kr.PrivKey(from)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			pr := newProgress(cmd.ErrOrStderr())
			defer pr.Done()
			o := tenant.Options{CertDir: certDir(cmd), Progress: pr.Step, Waiting: pr.Waiting}
			if !asJSON {
				o.Transfer = pr.Transfer // NB: quiet off a terminal too (progress.Transfer)
			}
			o.OutDir, _ = cmd.Flags().GetString("out")
			o.LeaseTimeout, _ = cmd.Flags().GetDuration("lease-timeout")
			o.NoWait, _ = cmd.Flags().GetBool("no-wait")
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			autoRedeploy, _ := cmd.Flags().GetBool("auto-redeploy")
			manual, _ := cmd.Flags().GetBool("manual")
			var results []tenant.Result
			var clusters []tenant.ClusterResult
			var planOf []int // results[i] is plans[planOf[i]]'s
			for pi, p := range plans {
				p.AutoRedeploy = p.AutoRedeploy || autoRedeploy
				p.Manual = p.Manual || manual
				if outBase, _ := cmd.Flags().GetString("out"); outBase != "" && len(plans) > 1 {
					o.OutDir = filepath.Join(outBase, p.Name) // one directory per order
				}
				if p.Cluster != nil {
					cr, err := tenant.DeployCluster(ctx, c, key, p, o)
					if err != nil {
						return &exitError{code: 1, err: err}
					}
					clusters = append(clusters, cr)
					continue
				}
				r, err := tenant.Deploy(ctx, c, key, p, o)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				results = append(results, r)
				planOf = append(planOf, pi)
			}
			if watch, _ := cmd.Flags().GetBool("watch"); watch {
				var wg sync.WaitGroup
				errs := make(chan error, len(results))
				for i := range results {
					p := plans[planOf[i]]
					if p.Kind != "service" {
						continue
					}
					o.Progress(fmt.Sprintf("watching lease %d (Ctrl-C to stop watching; the lease goes on)", results[i].OrderID))
					wg.Add(1)
					go func(p tenant.Plan, r tenant.Result) {
						defer wg.Done()
						errs <- tenant.Watch(ctx, c, key, p, r, o)
					}(p, results[i])
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						return &exitError{code: 1, err: err}
					}
				}
			}
			pr.Done()
			if len(clusters) > 0 {
				return printClusters(cmd, asJSON, clusters)
			}
			if asJSON {
				if len(results) == 1 {
					return printJSON(cmd.OutOrStdout(), results[0])
				}
				return printJSON(cmd.OutOrStdout(), results)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LEASE\tPROVIDER\tPRICE/BLOCK\tBLOCKS TO LEASE\tMS TO RUNNING\tSTATE\tOUTPUTS")
			for _, r := range results {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%d\n", r.OrderID, r.Provider, r.Price, r.OrderToLeaseBlks, r.OrderToRunningMS, r.State, len(r.Outputs))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, r := range results {
				if r.OutDir != "" && r.OutputsVerified {
					fmt.Fprintf(cmd.OutOrStdout(), "lease %d: %d outputs in %s, verified against the root committed on chain\n", r.OrderID, len(r.Outputs), r.OutDir)
				}
				if r.IngressURL != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "lease %d: %s\n", r.OrderID, r.IngressURL)
				}
				if r.Curl != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", r.Curl)
				}
			}
			return nil
		},
	}
	addKeyringFlags(cmd)
	addNodeFlags(cmd)
	cmd.Flags().String("from", "", "key that pays for and owns the deployment")
	cmd.Flags().String("out", "", "directory for a batch job's outputs (default: leave them on the provider; fetch later with kiln fetch)")
	cmd.Flags().Duration("lease-timeout", 60e9, "how long to wait for a lease before explaining why no provider bid and closing the order")
	cmd.Flags().Bool("manual", false, "pick the winning bid yourself (kiln tx market create-lease) instead of the lowest price winning")
	cmd.Flags().Bool("auto-redeploy", false, "if the provider stops answering, re-open the order for other providers with the remaining escrow")
	cmd.Flags().Bool("watch", false, "for services: stay and follow the lease, re-sending the workload if an --auto-redeploy order moves to another provider")
	cmd.Flags().Bool("no-wait", false, "return once the workload runs, even for a batch job")
	return cmd
}
