package certpem

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func testPEM(t testing.TB) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "kiln"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestParse(t *testing.T) {
	good := testPEM(t)
	key := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	junk := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not der")})
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"one certificate", good, nil},
		{"trailing newlines", append(append([]byte{}, good...), "\n\n  "...), nil},
		{"empty", nil, ErrSize},
		{"too large", append(append([]byte{}, good...), make([]byte, MaxBytes)...), ErrSize},
		{"a key", key, ErrNotCertificate},
		{"key first", append(append([]byte{}, key...), good...), ErrNotCertificate},
		{"two certificates", append(append([]byte{}, good...), good...), ErrNotCertificate},
		{"text", []byte("hello"), ErrNotCertificate},
		{"not DER", junk, ErrX509},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.in)
			if tc.want == nil && (err != nil || c.Subject.CommonName != "kiln") || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Parse() = %v, %v; want %v", c, err, tc.want)
			}
		})
	}
}

// FuzzParse: no input panics Parse, and what it accepts is one certificate
// block whose DER parses.
func FuzzParse(f *testing.F) {
	f.Add(testPEM(f))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		blk, _ := pem.Decode(b)
		if blk == nil || !strings.EqualFold(blk.Type, "CERTIFICATE") || c == nil {
			t.Fatalf("Parse accepted %q", b)
		}
	})
}

func TestGenerate(t *testing.T) {
	certPEM, keyPEM, err := Generate("127.0.0.1", []string{"127.0.0.1", "provider.example"}, time.Hour, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatalf("Generate() = %v", err)
	}
	c, err := Parse(certPEM)
	if err != nil {
		t.Fatalf("Parse(Generate()) = %v", err)
	}
	if c.VerifyHostname("provider.example") != nil || c.VerifyHostname("127.0.0.1") != nil ||
		len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || time.Until(c.NotAfter) > time.Hour {
		t.Errorf("generated certificate = %v %v %v, not after %s", c.DNSNames, c.IPAddresses, c.ExtKeyUsage, c.NotAfter)
	}
	if time.Since(c.NotBefore) < time.Minute {
		t.Errorf("NotBefore = %s, want backdated for clock skew", c.NotBefore)
	}
	if blk, _ := pem.Decode(keyPEM); blk == nil || blk.Type != "EC PRIVATE KEY" {
		t.Errorf("key PEM = %q, want an EC PRIVATE KEY block", keyPEM)
	}
	for _, bad := range []struct {
		cn string
		d  time.Duration
	}{{"", time.Hour}, {"x", 0}, {"x", -time.Second}} {
		if _, _, err := Generate(bad.cn, nil, bad.d, x509.ExtKeyUsageClientAuth); err == nil {
			t.Errorf("Generate(%q, %s) = nil error", bad.cn, bad.d)
		}
	}
}
