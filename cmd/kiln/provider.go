package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/provider/daemon"
	// The executors a provider can name in [executor] kind.
	_ "github.com/kiln-network/kiln/provider/executor/docker"
	_ "github.com/kiln-network/kiln/provider/executor/process"
)

func newProviderCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "provider", Short: "Run a provider: register hardware, bid on orders, run leases"}

	run := &cobra.Command{
		Use:   "run",
		Short: "Run the provider daemon until interrupted",
		Long: "Registers the --key account as a provider (or reuses its registration), bids on fitting orders by the\n" +
			"config's price table, serves the tenant API over mutual TLS, runs leases' workloads, heartbeats and\n" +
			"reports completions. Stopping it leaves workloads running; starting it again re-attaches to them.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("open provider config: %w", err)
			}
			cfg, err := daemon.Parse(f)
			f.Close()
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			name, _ := cmd.Flags().GetString("key")
			kr, err := openKeyring(cmd)
			if err != nil {
				return err
			}
			key, _, err := kr.PrivKey(name)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if v, _ := cmd.Flags().GetBool("verbose"); v {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			d, err := daemon.New(cfg, daemon.Deps{Client: c, Key: key, Logger: log})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return d.Run(ctx)
		},
	}
	run.Flags().String("key", "", "keyring name of the provider account")
	run.Flags().String("config", "provider.toml", "provider config file (TOML); kiln provider example-config prints an example")
	run.Flags().Bool("verbose", false, "log at debug level (why each order got no bid)")
	run.MarkFlagRequired("key")
	addNodeFlags(run)
	addKeyringFlags(run)

	example := &cobra.Command{
		Use:   "example-config",
		Short: "Print an example provider config with every field explained",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), daemon.ExampleConfig)
			return err
		},
	}
	cmd.AddCommand(run, example)
	return cmd
}
