package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/work/infer"
)

func newWorkInferCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "infer --checkpoint FILE",
		Short: "Serve a trained model (a kiln work train checkpoint) over HTTP: POST /predict",
		Long: `Serve the model of a checkpoint written by kiln work train (either engine) until stopped:
POST /predict {"input": [64 pixel values 0-16]} or {"inputs": [[...], ...]} answers
{"predictions": [{"class", "probs"}], "step", "checkpoint_sha256"}; GET / describes the
model, GET /metrics is Prometheus. Run it as a lease's service behind the provider's ingress.`,
		Example: `  kiln work infer --checkpoint /tmp/t/step-002000.kckpt --listen 127.0.0.1:8080
  curl -d '{"input": [0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0]}' 127.0.0.1:8080/predict`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("checkpoint")
			listen, _ := cmd.Flags().GetString("listen")
			if port, _ := cmd.Flags().GetInt("port"); port != 0 {
				listen = fmt.Sprintf("127.0.0.1:%d", port)
			}
			m, err := infer.Load(path)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			srv := &http.Server{Handler: m.Handler(log), ReadHeaderTimeout: 10 * time.Second}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); srv.Close() }()
			log.Info("kiln work infer serving", "addr", l.Addr().String(), "engine", m.Engine, "step", m.Step, "checkpoint_sha256", m.SHA256)
			fmt.Fprintf(cmd.OutOrStdout(), "serving on %s\n", l.Addr())
			if err := srv.Serve(l); err != http.ErrServerClosed {
				return err
			}
			return nil
		},
	}
	c.Flags().String("checkpoint", "", "checkpoint file (DIR/step-NNNNNN.kckpt)")
	c.Flags().String("listen", "127.0.0.1:8080", "address to listen on (port 0: any free port, printed)")
	c.Flags().Int("port", 0, "listen on 127.0.0.1:PORT (what a lease's service manifest gives)")
	c.MarkFlagRequired("checkpoint")
	return c
}
