package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/ports"
)

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a validator: CometBFT consensus with the Kiln application, in one process",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conf, err := node.LoadConfig(homeFlag(cmd))
			if err != nil {
				return err
			}
			if v, _ := cmd.Flags().GetString("rpc.laddr"); v != "" {
				conf.RPC.ListenAddress = v
			}
			if v, _ := cmd.Flags().GetString("p2p.laddr"); v != "" {
				conf.P2P.ListenAddress = v
			}
			if v, _ := cmd.Flags().GetString("metrics.laddr"); v != "" {
				conf.Instrumentation.Prometheus, conf.Instrumentation.PrometheusListenAddr = true, v
			}
			if v, _ := cmd.Flags().GetString("p2p.persistent_peers"); v != "" {
				conf.P2P.PersistentPeers = v
			}
			lvlS, _ := cmd.Flags().GetString("log_level")
			lvl, err := node.ParseLevel(lvlS)
			if err != nil {
				return err
			}
			cometS, _ := cmd.Flags().GetString("comet_log_level")
			cometLvl, err := node.ParseLevel(cometS)
			if err != nil {
				return err
			}
			inv, _ := cmd.Flags().GetBool("check-invariants")
			appConf, err := node.LoadAppConfig(homeFlag(cmd))
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("state-sync.snapshot-interval") {
				appConf.StateSync.SnapshotInterval, _ = cmd.Flags().GetInt64("state-sync.snapshot-interval")
			}
			if err := appConf.Validate(); err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl}))
			n, err := node.Start(conf, node.Options{Logger: logger, CometLevel: cometLvl, CheckInvariants: inv, StateSync: appConf.StateSync})
			if ports.InUse(err) {
				return fmt.Errorf("%w\n(another program, perhaps another node, listens there: choose another port in %s or with --rpc.laddr / --p2p.laddr; port 0 takes any free one)",
					err, filepath.Join(homeFlag(cmd), "config", "config.toml"))
			}
			if err != nil {
				return err
			}
			// NB: rpc is the address bound, with the port the kernel picked for port 0.
			logger.Info("kiln node running", "home", homeFlag(cmd), "rpc", n.RPCAddr(), "p2p", conf.P2P.ListenAddress, "metrics", n.MetricsURL(), "height", n.App.Height())
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			s := <-sig
			logger.Info("shutting down", "signal", s.String())
			if err := n.Stop(); err != nil {
				return fmt.Errorf("stop node: %w", err)
			}
			logger.Info("stopped", "height", n.App.Height(), "app_hash", fmt.Sprintf("%X", n.App.AppHash()))
			return nil
		},
	}
	cmd.Flags().String("rpc.laddr", "", "RPC listen address (default from config.toml, tcp://127.0.0.1:26657); port 0 takes a free port, logged as rpc=")
	cmd.Flags().String("p2p.laddr", "", "P2P listen address (default from config.toml, tcp://127.0.0.1:26656); port 0 takes a free port no peer learns, for a node nobody dials")
	cmd.Flags().String("metrics.laddr", "", "serve Prometheus metrics (CometBFT's and the app's kiln_*) at http://HOST:PORT/metrics (default from config.toml: instrumentation.prometheus, prometheus_listen_addr); port 0 takes a free port, logged as metrics=")
	cmd.Flags().String("p2p.persistent_peers", "", "comma-separated ID@host:port peers (default from config.toml)")
	cmd.Flags().String("log_level", "info", "Kiln log level: debug, info, warn, error")
	cmd.Flags().String("comet_log_level", "error", "CometBFT log level: debug, info, warn, error")
	cmd.Flags().Int64("state-sync.snapshot-interval", 0, "take a state-sync snapshot every N heights for joining peers (default from app.toml; 0 takes none)")
	cmd.Flags().Bool("check-invariants", false, "check after every block that balances add up to supply (slow on big states)")
	return cmd
}
