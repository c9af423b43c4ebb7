package units

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// maxJobSize bounds job.json: parameters are small; big inputs are assets.
const maxJobSize = 1 << 20

// Job is DIR/job.json: everything a verifier needs to re-execute any unit of the job.
// Params are the workload's own (strictly decoded by it); Assets are input files the job
// reads (a .blend scene, a training script, a dataset), stored under DIR beside the
// outputs and pinned by their SHA-256 so a verifier re-runs on exactly the same inputs.
type Job struct {
	Kind   string            `json:"kind"`
	Params json.RawMessage   `json:"params"`
	Assets map[string]string `json:"assets,omitempty"` // file under DIR -> hex SHA-256

	dir string // where the job was read from or written to; assets are found there
}

// NewJob returns a job of kind with params encoded as JSON.
func NewJob(kind string, params any) (Job, error) {
	b, err := json.Marshal(params)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: encode params: %w", kind, err)
	}
	return Job{Kind: kind, Params: b}, nil
}

// Dir is the directory the job was read from or written to ("" for a job built in memory).
func (j Job) Dir() string { return j.dir }

// WithDir returns j with its assets looked up in dir.
func (j Job) WithDir(dir string) Job { j.dir = dir; return j }

// DecodeParams decodes the job's params into v, refusing unknown fields.
func (j Job) DecodeParams(v any) error {
	dec := json.NewDecoder(bytes.NewReader(j.Params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("job %s params: %w", j.Kind, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("job %s params: data after the object", j.Kind)
	}
	return nil
}

// Validate checks the kind, the params' shape and the assets' names and hashes.
func (j Job) Validate() error {
	if err := ValidID(j.Kind); err != nil {
		return fmt.Errorf("job kind: %w", err)
	}
	if len(j.Params) == 0 || j.Params[0] != '{' {
		return fmt.Errorf("job %s params: must be a JSON object", j.Kind)
	}
	for _, name := range sortedKeys(j.Assets) {
		if err := ValidPath(name); err != nil {
			return fmt.Errorf("job asset: %w", err)
		}
		if _, err := ParseSum(j.Assets[name]); err != nil {
			return fmt.Errorf("job asset %s: %w", name, err)
		}
	}
	return nil
}

// ParseJob decodes and validates a job.json document.
func ParseJob(data []byte) (Job, error) {
	if len(data) > maxJobSize {
		return Job{}, fmt.Errorf("job.json: %d bytes, at most %d", len(data), maxJobSize)
	}
	var j Job
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Job{}, fmt.Errorf("job.json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Job{}, errors.New("job.json: data after the object")
	}
	if err := j.Validate(); err != nil {
		return Job{}, fmt.Errorf("job.json: %w", err)
	}
	return j, nil
}

// ReadJob reads and validates DIR/job.json; the job's assets are looked up in dir.
func ReadJob(dir string) (Job, error) {
	data, err := readFile(dir, JobFile, maxJobSize)
	if err != nil {
		return Job{}, err
	}
	j, err := ParseJob(data)
	if err != nil {
		return Job{}, err
	}
	j.dir = dir
	return j, nil
}

// Write validates j and writes it to DIR/job.json.
func (j Job) Write(dir string) error {
	if err := j.Validate(); err != nil {
		return fmt.Errorf("write job.json: %w", err)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("write job.json: %w", err)
	}
	return writeFileAtomic(dir, JobFile, append(b, '\n'))
}

// AddAsset copies the file at src into dir as name and pins it in the job; the job's
// directory becomes dir.
func (j *Job) AddAsset(dir, name, src string) error {
	if err := ValidPath(name); err != nil {
		return fmt.Errorf("job asset: %w", err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("job asset %s: %w", name, err)
	}
	if err := writeFileAtomic(dir, name, data); err != nil {
		return fmt.Errorf("job asset %s: %w", name, err)
	}
	if j.Assets == nil {
		j.Assets = map[string]string{}
	}
	j.Assets[name] = Sum(data)
	j.dir = dir
	return nil
}

// AssetPath returns the path of asset name in the job's directory after checking that
// the file there still has the pinned hash (a verifier never re-runs on other inputs).
func (j Job) AssetPath(name string) (string, error) {
	want, ok := j.Assets[name]
	if !ok {
		return "", fmt.Errorf("job asset %q: not in job.json", name)
	}
	if j.dir == "" {
		return "", fmt.Errorf("job asset %q: job has no directory", name)
	}
	data, err := readFile(j.dir, name, 1<<40)
	if err != nil {
		return "", fmt.Errorf("job asset: %w", err)
	}
	if got := Sum(data); got != want {
		return "", fmt.Errorf("job asset %s: sha256 %s, job.json pins %s: %w", name, got, want, ErrHashMismatch)
	}
	return filepath.Join(j.dir, filepath.FromSlash(name)), nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
