package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/work/matmul"
)

func newWorkCmd() *cobra.Command {
	w := &cobra.Command{Use: "work", Short: "Reference workloads that run on providers (and double as checks)"}
	mm := &cobra.Command{
		Use:   "matmul",
		Short: "Multiply two seeded N×N matrices, verify with Freivalds, write the result as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, _ := cmd.Flags().GetInt("n")
			seed, _ := cmd.Flags().GetInt64("seed")
			out, _ := cmd.Flags().GetString("out")
			if dir, _ := cmd.Flags().GetString("dir"); dir != "" {
				return runMatmulUnits(cmd, n, seed, dir)
			}
			res, err := matmul.Run(n, seed)
			if err != nil {
				return err
			}
			b, _ := json.MarshalIndent(res, "", "  ")
			fmt.Fprintf(cmd.OutOrStdout(), "matmul n=%d seed=%d: %.2f GFLOP/s, digest %s, verified %v\n", n, seed, res.GFLOPS, res.Digest[:16], res.Verified)
			if out == "" {
				return nil
			}
			if d := os.Getenv("KILN_OUT"); d != "" && !filepath.IsAbs(out) {
				out = filepath.Join(d, out)
			}
			return os.WriteFile(out, append(b, '\n'), 0o644)
		},
	}
	mm.Flags().Int("n", 256, "matrix size")
	mm.Flags().Int64("seed", 1, "seed of the matrices")
	mm.Flags().String("out", "", "file for the JSON result (relative to $KILN_OUT when set)")
	mm.Flags().String("dir", "", "write the product as verifiable units instead: row blocks, units.json and job.json under DIR")
	mm.Flags().Int("block-rows", 0, "with --dir: rows per unit (0: n/64, so each unit is about 1/64 of the job)")

	serve := &cobra.Command{
		Use:   "serve",
		Short: "A small HTTP service (the demo's service): answers on --port until stopped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			port, _ := cmd.Flags().GetInt("port")
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return err
			}
			started := time.Now()
			mux := http.NewServeMux()
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]any{"service": "kiln-work-serve", "lease": os.Getenv("KILN_LEASE_ID"),
					"path": r.URL.Path, "uptime_s": int(time.Since(started).Seconds())})
			})
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); srv.Close() }()
			fmt.Fprintf(cmd.OutOrStdout(), "serving on %s\n", l.Addr())
			if err := srv.Serve(l); err != http.ErrServerClosed {
				return err
			}
			return nil
		},
	}
	serve.Flags().Int("port", 8080, "port on 127.0.0.1")
	w.AddCommand(mm, serve, newWorkRenderCmd(), newWorkTrainCmd(), newWorkInferCmd(), newWorkVerifyCmd())
	return w
}
