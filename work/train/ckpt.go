package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
)

// The checkpoint format both engines write (Go here, PyTorch through kiln_ckpt.py):
//
//	"KILNCKPT1\n"
//	one line of JSON: {"step": S, "prev": "<hex SHA-256 of the previous checkpoint file,
//	                   64 zeros at step 0>", "engine": "go"|"pytorch",
//	                   "tensors": [{"name": "w1", "shape": [64, 64]}, ...]}
//	"\n"
//	the tensors' float32 values, little-endian, in header order, row-major.
//
// prev chains the checkpoints: each one commits to the whole history before it, so a
// verifier replaying segment i..i+1 knows it starts from the checkpoint the provider
// committed, and a provider cannot swap one checkpoint without breaking every later link.

// Magic starts every checkpoint file.
const Magic = "KILNCKPT1\n"

// Limits on what DecodeCheckpoint accepts: far above the reference models, low enough
// that a hostile checkpoint cannot make a verifier allocate gigabytes.
const (
	maxHeader     = 64 << 10
	maxTensors    = 256
	maxParameters = 64 << 20
)

// Tensor is one named float32 array of a checkpoint.
type Tensor struct {
	Name  string    `json:"name"`
	Shape []int     `json:"shape"`
	Data  []float32 `json:"-"`
}

// Checkpoint is a decoded checkpoint file.
type Checkpoint struct {
	Step    int      `json:"step"`
	Prev    string   `json:"prev"`
	Engine  string   `json:"engine"`
	Tensors []Tensor `json:"tensors"`
}

// ZeroPrev is the prev of a step-0 checkpoint.
var ZeroPrev = hex.EncodeToString(make([]byte, 32))

var tensorName = regexp.MustCompile(`^[A-Za-z0-9_.]{1,64}$`)

// Tensor returns the tensor called name, or nil.
func (c *Checkpoint) Tensor(name string) *Tensor {
	for i := range c.Tensors {
		if c.Tensors[i].Name == name {
			return &c.Tensors[i]
		}
	}
	return nil
}

// Encode writes c in the checkpoint format.
func (c *Checkpoint) Encode() ([]byte, error) {
	if err := c.validateHeader(); err != nil {
		return nil, err
	}
	for _, t := range c.Tensors {
		if len(t.Data) != size(t.Shape) {
			return nil, fmt.Errorf("checkpoint tensor %s: %d values for shape %v", t.Name, len(t.Data), t.Shape)
		}
	}
	h, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(Magic)
	b.Write(h)
	b.WriteByte('\n')
	var f [4]byte
	for _, t := range c.Tensors {
		for _, v := range t.Data {
			binary.LittleEndian.PutUint32(f[:], math.Float32bits(v))
			b.Write(f[:])
		}
	}
	return b.Bytes(), nil
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func (c *Checkpoint) validateHeader() error {
	if c.Step < 0 {
		return fmt.Errorf("checkpoint step %d: must be >= 0", c.Step)
	}
	if len(c.Prev) != 64 {
		return fmt.Errorf("checkpoint prev %.70q: must be 64 hex digits", c.Prev)
	}
	if _, err := hex.DecodeString(c.Prev); err != nil || c.Prev != string(bytes.ToLower([]byte(c.Prev))) {
		return fmt.Errorf("checkpoint prev %q: must be lowercase hex", c.Prev)
	}
	if c.Step == 0 && c.Prev != ZeroPrev {
		return fmt.Errorf("checkpoint at step 0 has prev %s, want zeros", c.Prev)
	}
	if c.Engine != EngineGo && c.Engine != EnginePyTorch {
		return fmt.Errorf("checkpoint engine %q: must be %q or %q", c.Engine, EngineGo, EnginePyTorch)
	}
	if len(c.Tensors) == 0 || len(c.Tensors) > maxTensors {
		return fmt.Errorf("checkpoint: %d tensors, must be 1 to %d", len(c.Tensors), maxTensors)
	}
	total := 0
	seen := map[string]bool{}
	for _, t := range c.Tensors {
		if !tensorName.MatchString(t.Name) {
			return fmt.Errorf("checkpoint tensor name %.70q: 1-64 of [A-Za-z0-9_.]", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("checkpoint tensor %s: appears twice", t.Name)
		}
		seen[t.Name] = true
		if len(t.Shape) == 0 || len(t.Shape) > 8 {
			return fmt.Errorf("checkpoint tensor %s: shape %v must have 1 to 8 dimensions", t.Name, t.Shape)
		}
		n := 1
		for _, d := range t.Shape {
			if d < 1 || d > maxParameters {
				return fmt.Errorf("checkpoint tensor %s: dimension %d out of range", t.Name, d)
			}
			n *= d
			if n > maxParameters {
				return fmt.Errorf("checkpoint tensor %s: more than %d values", t.Name, maxParameters)
			}
		}
		total += n
		if total > maxParameters {
			return fmt.Errorf("checkpoint: more than %d values in all", maxParameters)
		}
	}
	return nil
}

// DecodeCheckpoint parses a checkpoint file strictly: magic, header, and exactly as many
// bytes as the shapes say; NaN and infinite values are refused (no honest run has them).
func DecodeCheckpoint(b []byte) (*Checkpoint, error) {
	if !bytes.HasPrefix(b, []byte(Magic)) {
		return nil, errors.New("checkpoint: not a Kiln checkpoint (no KILNCKPT1 magic)")
	}
	rest := b[len(Magic):]
	nl := bytes.IndexByte(rest[:min(len(rest), maxHeader)], '\n')
	if nl < 0 {
		return nil, fmt.Errorf("checkpoint: no header line within %d bytes", maxHeader)
	}
	var c Checkpoint
	dec := json.NewDecoder(bytes.NewReader(rest[:nl]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("checkpoint header: %w", err)
	}
	if dec.More() {
		return nil, errors.New("checkpoint header: data after the object")
	}
	if err := c.validateHeader(); err != nil {
		return nil, err
	}
	data := rest[nl+1:]
	want := 0
	for _, t := range c.Tensors {
		want += size(t.Shape) * 4
	}
	if len(data) != want {
		return nil, fmt.Errorf("checkpoint: %d bytes of values, the shapes need %d", len(data), want)
	}
	for i := range c.Tensors {
		t := &c.Tensors[i]
		n := size(t.Shape)
		t.Data = make([]float32, n)
		for j := range t.Data {
			v := math.Float32frombits(binary.LittleEndian.Uint32(data[4*j:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("checkpoint tensor %s: value %d is %v", t.Name, j, v)
			}
			t.Data[j] = v
		}
		data = data[4*n:]
	}
	return &c, nil
}

// Hash is the hex SHA-256 of a checkpoint file: the next checkpoint's prev.
func Hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
