package certpem

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// clockSkew backdates NotBefore of generated certificates so that a
// verifier whose clock is a little behind still accepts a fresh one.
const clockSkew = 5 * time.Minute

// Generate returns a self-signed ECDSA P-256 certificate for cn, valid for
// the DNS names and IP addresses in hosts and the one extended key usage
// given, from now (less a few minutes of skew) for validFor, and its key,
// both PEM-encoded. Tenants' client certificates (the account address as
// cn, published on chain) and providers' server certificates (pinned by
// tenants as the only root) are made with it; neither needs a CA.
func Generate(cn string, hosts []string, validFor time.Duration, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	return generateAt(cn, hosts, validFor, time.Now(), usage)
}

func generateAt(cn string, hosts []string, validFor time.Duration, now time.Time, usage x509.ExtKeyUsage) ([]byte, []byte, error) {
	if cn == "" {
		return nil, nil, errors.New("generate certificate: common name: must be set")
	}
	if validFor <= 0 {
		return nil, nil, fmt.Errorf("generate certificate for %s: validity must be > 0 (got %s)", cn, validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", cn, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial for %s: %w", cn, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate for %s: %w", cn, err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key for %s: %w", cn, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
