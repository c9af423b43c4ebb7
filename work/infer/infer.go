// Package infer serves a model from a train checkpoint over HTTP: POST an 8×8 digit image,
// get its class. It is the inference workload a lease runs as a service, behind the
// provider's ingress.
//
//	GET  /          the model: engine, step, checkpoint SHA-256, input size, classes
//	POST /predict   {"input": [64 values 0-16]} or {"inputs": [[...], ...]} (at most
//	                MaxBatch) -> {"predictions": [{"class": k, "probs": [10]}], ...}
//	GET  /healthz   200 once the model is loaded
//	GET  /metrics   Prometheus: kiln_infer_requests_total{code}, kiln_infer_images_total
package infer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kiln-network/kiln/work/train"
)

// Limits of one request.
const (
	MaxBatch   = 1024
	maxBody    = 1 << 20
	inputSize  = 64
	inputScale = 16 // pixel values are 0-16, as in the training data
)

// Model is a loaded checkpoint.
type Model struct {
	mlp    *train.MLP
	Step   int    `json:"step"`
	Engine string `json:"engine"`
	SHA256 string `json:"checkpoint_sha256"`
}

// Load reads and decodes a checkpoint file written by either training engine.
func Load(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	return Decode(b)
}

// Decode returns the model in checkpoint bytes b.
func Decode(b []byte) (*Model, error) {
	c, err := train.DecodeCheckpoint(b)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	m, err := train.MLPFromCheckpoint(c)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	return &Model{mlp: m, Step: c.Step, Engine: c.Engine, SHA256: train.Hash(b)}, nil
}

// Prediction is the answer for one image.
type Prediction struct {
	Class int       `json:"class"`
	Probs []float32 `json:"probs"`
}

// Predict classifies one image of 64 pixel values 0-16.
func (m *Model) Predict(in []float64) (Prediction, error) {
	if len(in) != inputSize {
		return Prediction{}, fmt.Errorf("input: %d values, want %d (an 8x8 image)", len(in), inputSize)
	}
	var x [inputSize]float32
	for i, v := range in {
		if math.IsNaN(v) || v < 0 || v > inputScale {
			return Prediction{}, fmt.Errorf("input[%d]: %v, must be 0 to %d", i, v, inputScale)
		}
		x[i] = float32(v / inputScale)
	}
	p := m.mlp.Predict(x)
	best := 0
	for k := range p {
		if p[k] > p[best] {
			best = k
		}
	}
	return Prediction{Class: best, Probs: p[:]}, nil
}

// Request is the body of POST /predict: one image or a batch.
type Request struct {
	Input  []float64   `json:"input,omitempty"`
	Inputs [][]float64 `json:"inputs,omitempty"`
}

// Response is the answer to POST /predict.
type Response struct {
	Predictions []Prediction `json:"predictions"`
	Step        int          `json:"step"`
	Checkpoint  string       `json:"checkpoint_sha256"`
}

// Handler serves m. log may be nil.
func (m *Model) Handler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kiln_infer_requests_total", Help: "Prediction requests by HTTP status code."}, []string{"code"})
	imgs := prometheus.NewCounter(prometheus.CounterOpts{Name: "kiln_infer_images_total", Help: "Images classified."})
	reg.MustRegister(reqs, imgs)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"model": "mlp", "engine": m.Engine, "step": m.Step, "checkpoint_sha256": m.SHA256,
			"input": "64 pixel values 0-16 (an 8x8 image, row by row)", "classes": 10, "predict": "POST /predict"})
	})
	mux.HandleFunc("POST /predict", func(w http.ResponseWriter, r *http.Request) {
		code, resp := m.predict(w, r)
		reqs.WithLabelValues(strconv.Itoa(code)).Inc()
		if code == http.StatusOK {
			imgs.Add(float64(len(resp.(Response).Predictions)))
		} else {
			log.Info("infer: request refused", "code", code, "error", resp)
		}
		writeJSON(w, code, resp)
	})
	return mux
}

func (m *Model) predict(w http.ResponseWriter, r *http.Request) (int, any) {
	bad := func(err error) (int, any) { return http.StatusBadRequest, map[string]string{"error": err.Error()} }
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("body larger than %d bytes", maxBody)}
		}
		return bad(fmt.Errorf("body: %w", err))
	}
	if dec.More() {
		return bad(errors.New("body: data after the JSON object"))
	}
	batch := req.Inputs
	switch {
	case req.Input != nil && req.Inputs != nil:
		return bad(errors.New("body: give input or inputs, not both"))
	case req.Input != nil:
		batch = [][]float64{req.Input}
	case len(batch) == 0:
		return bad(errors.New(`body: want {"input": [64 values]} or {"inputs": [[...], ...]}`))
	case len(batch) > MaxBatch:
		return bad(fmt.Errorf("inputs: %d images, at most %d", len(batch), MaxBatch))
	}
	resp := Response{Step: m.Step, Checkpoint: m.SHA256}
	for i, in := range batch {
		p, err := m.Predict(in)
		if err != nil {
			if req.Inputs != nil {
				err = fmt.Errorf("inputs[%d]: %w", i, err)
			}
			return bad(err)
		}
		resp.Predictions = append(resp.Predictions, p)
	}
	return http.StatusOK, resp
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
