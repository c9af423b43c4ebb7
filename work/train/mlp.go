package train

import (
	"fmt"
	"math"
)

// The model both engines train: a multilayer perceptron 64 → hidden (ReLU) → 10, softmax
// cross-entropy, plain minibatch SGD. Tensors are named and shaped like PyTorch's
// nn.Linear state dict (fc1.weight is [hidden, 64]), so a checkpoint of either engine
// serves through the same inference code.
//
// NB: every product is rounded through an explicit float32 conversion before it is
// added: the Go spec lets a compiler fuse x*y+z into an FMA, which would change bits on
// some architectures. The Go engine is bit-exact on one GOARCH.

// Tensor names.
const (
	tW1 = "fc1.weight"
	tB1 = "fc1.bias"
	tW2 = "fc2.weight"
	tB2 = "fc2.bias"
)

// MLP is the model's weights.
type MLP struct {
	Hidden         int
	W1, B1, W2, B2 []float32
}

// newMLP initialises weights uniform in ±1/sqrt(fan-in) from seed (PyTorch's default
// bound for nn.Linear).
func newMLP(hidden int, seed int64) *MLP {
	r := splitmix{uint64(seed) ^ 0x77656967}
	m := &MLP{Hidden: hidden, W1: make([]float32, hidden*features), B1: make([]float32, hidden), W2: make([]float32, classes*hidden), B2: make([]float32, classes)}
	fill := func(v []float32, fanIn int) {
		bound := 1 / math.Sqrt(float64(fanIn))
		for i := range v {
			v[i] = float32((r.float()*2 - 1) * bound)
		}
	}
	fill(m.W1, features)
	fill(m.B1, features)
	fill(m.W2, hidden)
	fill(m.B2, hidden)
	return m
}

// checkpoint returns m as a checkpoint at step with prev.
func (m *MLP) checkpoint(step int, prev, engine string) *Checkpoint {
	cp := func(v []float32) []float32 { return append([]float32(nil), v...) }
	return &Checkpoint{Step: step, Prev: prev, Engine: engine, Tensors: []Tensor{
		{Name: tW1, Shape: []int{m.Hidden, features}, Data: cp(m.W1)},
		{Name: tB1, Shape: []int{m.Hidden}, Data: cp(m.B1)},
		{Name: tW2, Shape: []int{classes, m.Hidden}, Data: cp(m.W2)},
		{Name: tB2, Shape: []int{classes}, Data: cp(m.B2)},
	}}
}

// MLPFromCheckpoint returns the model in c, checking that its tensors are the MLP's.
func MLPFromCheckpoint(c *Checkpoint) (*MLP, error) {
	w1 := c.Tensor(tW1)
	if w1 == nil || len(w1.Shape) != 2 || w1.Shape[1] != features {
		return nil, fmt.Errorf("checkpoint: no %s of shape [hidden, %d]", tW1, features)
	}
	h := w1.Shape[0]
	want := map[string][]int{tB1: {h}, tW2: {classes, h}, tB2: {classes}}
	m := &MLP{Hidden: h, W1: w1.Data}
	for name, shape := range want {
		t := c.Tensor(name)
		if t == nil || fmt.Sprint(t.Shape) != fmt.Sprint(shape) {
			return nil, fmt.Errorf("checkpoint: no %s of shape %v", name, shape)
		}
		switch name {
		case tB1:
			m.B1 = t.Data
		case tW2:
			m.W2 = t.Data
		case tB2:
			m.B2 = t.Data
		}
	}
	if len(c.Tensors) != 4 {
		return nil, fmt.Errorf("checkpoint: %d tensors, the MLP has 4", len(c.Tensors))
	}
	return m, nil
}

// forward returns the hidden activations and class probabilities of x.
func (m *MLP) forward(x *[features]float32, h []float32, p *[classes]float32) {
	for j := 0; j < m.Hidden; j++ {
		s := m.B1[j]
		w := m.W1[j*features : (j+1)*features]
		for i := 0; i < features; i++ {
			s = s + float32(w[i]*x[i])
		}
		h[j] = max(s, 0)
	}
	mx := float32(math.Inf(-1))
	for k := 0; k < classes; k++ {
		s := m.B2[k]
		w := m.W2[k*m.Hidden : (k+1)*m.Hidden]
		for j := 0; j < m.Hidden; j++ {
			s = s + float32(w[j]*h[j])
		}
		p[k] = s
		mx = max(mx, s)
	}
	var sum float32
	for k := range p {
		p[k] = float32(math.Exp(float64(p[k] - mx)))
		sum += p[k]
	}
	for k := range p {
		p[k] /= sum
	}
}

// Predict returns the class probabilities of one image (64 values in [0, 1]).
func (m *MLP) Predict(x [features]float32) [classes]float32 {
	h := make([]float32, m.Hidden)
	var p [classes]float32
	m.forward(&x, h, &p)
	return p
}

// size is the number of weights: the length of a flat gradient, less its loss slot.
func (m *MLP) size() int { return len(m.W1) + len(m.B1) + len(m.W2) + len(m.B2) }

// step does one SGD step on the examples idx of d and returns the batch's mean loss.
func (m *MLP) step(d *Dataset, idx []int, lr float32) float32 {
	g := make([]float32, m.size()+1)
	loss := m.partGrad(d, idx, 1/float32(len(idx)), g)
	m.apply(g, lr)
	return loss
}

// partGrad adds to g (the flat gradient: W1, B1, W2, B2, then the loss) the gradient of
// inv × the summed loss over the examples idx of d, and returns that scaled loss (also
// added to g's last slot). With inv = 1/len(idx) it is the batch's mean loss; with inv =
// 1/batch over one part of a batch, the parts' gradients sum to the batch's.
func (m *MLP) partGrad(d *Dataset, idx []int, inv float32, g []float32) float32 {
	nW1, nB1, nW2 := len(m.W1), len(m.B1), len(m.W2)
	gW1 := g[:nW1]
	gB1 := g[nW1 : nW1+nB1]
	gW2 := g[nW1+nB1 : nW1+nB1+nW2]
	gB2 := g[nW1+nB1+nW2 : m.size()]
	h := make([]float32, m.Hidden)
	dh := make([]float32, m.Hidden)
	var p [classes]float32
	var loss float32
	for _, n := range idx {
		x := &d.X[n]
		m.forward(x, h, &p)
		loss += float32(-math.Log(float64(max(p[d.Y[n]], 1e-30))))
		for k := 0; k < classes; k++ {
			dz := p[k]
			if k == d.Y[n] {
				dz -= 1
			}
			dz *= inv
			gB2[k] += dz
			g := gW2[k*m.Hidden : (k+1)*m.Hidden]
			for j := 0; j < m.Hidden; j++ {
				g[j] = g[j] + float32(dz*h[j])
			}
		}
		for j := 0; j < m.Hidden; j++ {
			var s float32
			for k := 0; k < classes; k++ {
				dz := p[k]
				if k == d.Y[n] {
					dz -= 1
				}
				s = s + float32(float32(dz*inv)*m.W2[k*m.Hidden+j])
			}
			if h[j] <= 0 {
				s = 0
			}
			dh[j] = s
			gB1[j] += s
			g := gW1[j*features : (j+1)*features]
			for i := 0; i < features; i++ {
				g[i] = g[i] + float32(s*x[i])
			}
		}
	}
	loss *= inv
	g[len(g)-1] += loss
	return loss
}

// apply moves the weights against the flat gradient g: w -= lr × g.
func (m *MLP) apply(g []float32, lr float32) {
	off := 0
	for _, w := range [][]float32{m.W1, m.B1, m.W2, m.B2} {
		for i := range w {
			w[i] = w[i] - float32(lr*g[off+i])
		}
		off += len(w)
	}
}

// flat returns the weights as one vector (W1, B1, W2, B2): what rank 0 broadcasts.
func (m *MLP) flat() []float32 {
	v := make([]float32, 0, m.size())
	for _, w := range [][]float32{m.W1, m.B1, m.W2, m.B2} {
		v = append(v, w...)
	}
	return v
}

// setFlat loads the weights from a vector of flat's layout.
func (m *MLP) setFlat(v []float32) error {
	if len(v) != m.size() {
		return fmt.Errorf("train: %d weights, the model has %d", len(v), m.size())
	}
	off := 0
	for _, w := range [][]float32{m.W1, m.B1, m.W2, m.B2} {
		off += copy(w, v[off:])
	}
	return nil
}

// Accuracy is the fraction of rows [from, to) of d that m classifies right.
func (m *MLP) Accuracy(d *Dataset, from, to int) float64 {
	if to <= from {
		return 0
	}
	right := 0
	for n := from; n < to; n++ {
		p := m.Predict(d.X[n])
		best := 0
		for k := range p {
			if p[k] > p[best] {
				best = k
			}
		}
		if best == d.Y[n] {
			right++
		}
	}
	return float64(right) / float64(to-from)
}
