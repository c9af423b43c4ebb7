package vault

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// TestCopyHashed checks the pipelined copy against a plain one over sizes
// around its buffer boundaries and readers that return short reads.
func TestCopyHashed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, copyBuf - 1, copyBuf, copyBuf + 1, 4 * copyBuf, 9*copyBuf + 7, rng.IntN(20 * copyBuf)}
	readers := map[string]func(io.Reader) io.Reader{
		"plain":    func(r io.Reader) io.Reader { return r },
		"half":     iotest.HalfReader,
		"one-byte": func(r io.Reader) io.Reader { return iotest.OneByteReader(io.LimitReader(r, 3000)) },
		"data-err": iotest.DataErrReader,
	}
	for _, size := range sizes {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for name, wrap := range readers {
			want := data
			if name == "one-byte" && len(want) > 3000 {
				want = want[:3000]
			}
			var out bytes.Buffer
			h := sha256.New()
			n, err := CopyHashed(&out, h, wrap(bytes.NewReader(data)))
			if err != nil || n != int64(len(want)) || !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("%s reader, %d bytes: CopyHashed() = %d, %v; copied %d bytes, equal %v",
					name, size, n, err, out.Len(), bytes.Equal(out.Bytes(), want))
			}
			if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatalf("%s reader, %d bytes: hash differs from sha256 of the data", name, size)
			}
		}
	}
	// A nil hash copies only.
	var out bytes.Buffer
	if n, err := CopyHashed(&out, nil, bytes.NewReader(make([]byte, 3*copyBuf))); err != nil || n != 3*copyBuf {
		t.Fatalf("CopyHashed(nil hash) = %d, %v", n, err)
	}
}

// failAfter accepts limit bytes, then fails every write.
type failAfter struct {
	limit, got int
}

var errDisk = errors.New("disk full")

func (w *failAfter) Write(p []byte) (int, error) {
	if w.got+len(p) > w.limit {
		return 0, errDisk
	}
	w.got += len(p)
	return len(p), nil
}

// countingReader is an endless source that counts what was read from it.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	r.n += int64(len(p))
	return len(p), nil
}

// TestCopyHashedErrors: a write error stops the reading from an endless
// source and is returned with the bytes written; a read error is returned.
func TestCopyHashedErrors(t *testing.T) {
	src := &countingReader{}
	w := &failAfter{limit: 2 * copyBuf}
	n, err := CopyHashed(w, sha256.New(), src)
	if !errors.Is(err, errDisk) || n != 2*copyBuf {
		t.Fatalf("CopyHashed(failing writer) = %d, %v; want %d, %v", n, err, 2*copyBuf, errDisk)
	}
	// The reader runs at most the ring (4 buffers) and one read ahead.
	if src.n > 8*copyBuf {
		t.Errorf("read %d bytes from the source after the writer failed at %d", src.n, 2*copyBuf)
	}

	errNet := errors.New("connection reset")
	var out bytes.Buffer
	n, err = CopyHashed(&out, sha256.New(), io.MultiReader(bytes.NewReader(make([]byte, copyBuf+5)), iotest.ErrReader(errNet)))
	if !errors.Is(err, errNet) || n != copyBuf+5 {
		t.Fatalf("CopyHashed(failing reader) = %d, %v; want %d, %v", n, err, copyBuf+5, errNet)
	}
}
