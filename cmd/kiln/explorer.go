package main

import (
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/explorer"
)

func newExplorerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explorer",
		Short: "Serve the web explorer (overview, providers, orders, leases, blocks, search; every page also as JSON) and its metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			cfg := explorer.DefaultConfig()
			cfg.Node, _ = cmd.Flags().GetString("node")
			cfg.Listen, _ = cmd.Flags().GetString("listen")
			cfg.Refresh, _ = cmd.Flags().GetDuration("refresh")
			cfg.Probe, _ = cmd.Flags().GetDuration("probe")
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			if err := cfg.Validate(); err != nil {
				return usageErr(err)
			}
			s, err := explorer.New(cfg)
			if err != nil {
				return usageErr(err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := s.Start(ctx); err != nil {
				return err
			}
			if asJSON {
				printJSON(cmd.OutOrStdout(), map[string]string{"explorer_url": s.URL(), "metrics_url": s.URL() + "/metrics", "node": cfg.Node})
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "Kiln explorer for %s at %s (metrics %s/metrics); Ctrl-C to stop\n", cfg.Node, s.URL(), s.URL())
			}
			<-ctx.Done()
			return s.Close()
		},
	}
	addNodeFlags(cmd)
	d := explorer.DefaultConfig()
	cmd.Flags().String("listen", d.Listen, "HOST:PORT to serve on (port 0: a free port, printed)")
	cmd.Flags().Duration("refresh", d.Refresh, "how often to re-read the chain when its height moved")
	cmd.Flags().Duration("probe", d.Probe, "how often to check that each provider's API answers (online, uptime)")
	return cmd
}
