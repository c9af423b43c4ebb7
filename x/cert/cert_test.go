package cert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
)

// owner is the account every test certificate is published by.
var owner = types.Address{7}

// MustSelfSigned returns a PEM self-signed certificate for key, with owner's address as
// its CommonName, valid from nb to na.
func MustSelfSigned(tb testing.TB, key crypto.Signer, nb, na time.Time) []byte {
	tb.Helper()
	return MustSelfSignedCN(tb, key, owner.String(), nb, na)
}

// MustSelfSignedCN returns a PEM self-signed certificate for key with CommonName cn.
func MustSelfSignedCN(tb testing.TB, key crypto.Signer, cn string, nb, na time.Time) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestPublishRefusals(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	rsak, _ := rsa.GenerateKey(rand.Reader, 1024)
	day := 24 * time.Hour
	tests := []struct {
		name string
		pem  []byte
		want error // nil: accepted
		// inLog must appear in a refusal's message (the field and value it names).
		inLog string
	}{
		{"p256", MustSelfSigned(t, p256, now.Add(-day), now.Add(day)), nil, ""},
		{"ed25519", MustSelfSigned(t, edk, now.Add(-day), now.Add(day)), nil, ""},
		{"expired", MustSelfSigned(t, p256, now.Add(-2*day), now.Add(-day)), types.ErrInvalidCert, ""},
		{"not yet valid", MustSelfSigned(t, p256, now.Add(day), now.Add(2*day)), types.ErrInvalidCert, ""},
		{"p384", MustSelfSigned(t, p384, now.Add(-day), now.Add(day)), types.ErrInvalidCert, ""},
		{"rsa", MustSelfSigned(t, rsak, now.Add(-day), now.Add(day)), types.ErrInvalidCert, ""},
		{"garbage", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), types.ErrInvalidCert, ""},
		{"not pem", []byte("hello"), types.ErrInvalidCert, ""},
		{"CN of another account", MustSelfSignedCN(t, p256, types.Address{8}.String(), now.Add(-day), now.Add(day)), types.ErrInvalidMsg,
			`cert_pem.subject.common_name: must be the publishing account's address ` + owner.String() + ` (got "` + types.Address{8}.String() + `")`},
		{"CN not an address", MustSelfSignedCN(t, edk, "tenant", now.Add(-day), now.Add(day)), types.ErrInvalidMsg, `(got "tenant")`},
		{"empty CN", MustSelfSignedCN(t, edk, "", now.Add(-day), now.Add(day)), types.ErrInvalidMsg, `(got "")`},
		{"CN in upper case", MustSelfSignedCN(t, edk, strings.ToUpper(owner.String()), now.Add(-day), now.Add(day)), types.ErrInvalidMsg, "common_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := &types.Context{Store: store.NewMem(), Height: 5, Time: now}
			err := Handle(ctx, &MsgPublishCert{Owner: owner, CertPEM: tt.pem})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("publish: %v", err)
				}
				c, ok := Get(ctx, owner)
				if !ok || c.State != StateValid || c.CreatedHeight != 5 || c.PEM != string(tt.pem) {
					t.Fatalf("record = %+v, %v", c, ok)
				}
				if err := Handle(ctx, &MsgRevokeCert{Owner: owner}); err != nil {
					t.Fatal(err)
				}
				if c, _ := Get(ctx, owner); c.State != StateRevoked || c.Revoked != 5 {
					t.Fatalf("after revoke: %+v", c)
				}
				if err := Handle(ctx, &MsgRevokeCert{Owner: owner}); !errors.Is(err, types.ErrNotFound) {
					t.Fatalf("second revoke = %v, want ErrNotFound", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || err.Error() == "" || !strings.Contains(err.Error(), tt.inLog) {
				t.Fatalf("publish = %v, want %v naming %q", err, tt.want, tt.inLog)
			}
			if _, ok := Get(ctx, owner); ok {
				t.Fatal("a refused certificate was stored")
			}
		})
	}
}

func FuzzDecodePublish(f *testing.F) {
	w := codec.NewWriter(64)
	(&MsgPublishCert{Owner: types.Address{1}, CertPEM: []byte("x")}).MarshalTo(w)
	f.Add(w.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r := codec.NewReader(b)
		m := DecodePublish(r)
		if r.Done() != nil {
			return
		}
		w := codec.NewWriter(len(b))
		m.MarshalTo(w)
		if !bytes.Equal(w.Bytes(), b) {
			t.Fatalf("re-encoding %x gave %x", b, w.Bytes())
		}
		if m.ValidateBasic() == nil {
			_, _, _ = Parse(m.(*MsgPublishCert).CertPEM, time.Unix(0, 0))
		}
	})
}

func FuzzDecodeRevoke(f *testing.F) {
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := codec.NewReader(b)
		m := DecodeRevoke(r)
		if r.Done() != nil {
			return
		}
		w := codec.NewWriter(len(b))
		m.MarshalTo(w)
		if !bytes.Equal(w.Bytes(), b) {
			t.Fatalf("re-encoding %x gave %x", b, w.Bytes())
		}
	})
}
