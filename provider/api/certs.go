package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
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

// GenerateClientCert returns a self-signed ECDSA P-256 client certificate
// and its key, PEM-encoded, for the account ownerAddress (the Subject
// CommonName), valid from now (less a few minutes of skew) for validFor.
// Its certificate is what `kiln tx cert publish` puts on chain.
func GenerateClientCert(ownerAddress string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	return generateCertAt(ownerAddress, nil, validFor, time.Now(), x509.ExtKeyUsageClientAuth)
}

// GenerateServerCert returns a self-signed ECDSA P-256 server certificate and
// its key for a provider, valid for the given DNS names and IP addresses.
// Tenants pin it as the only root (NewClient), so it needs no CA.
func GenerateServerCert(hosts []string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	cn := "kiln-provider"
	if len(hosts) > 0 {
		cn = hosts[0]
	}
	return generateCertAt(cn, hosts, validFor, time.Now(), x509.ExtKeyUsageServerAuth)
}

func generateCertAt(cn string, hosts []string, validFor time.Duration, now time.Time, usage x509.ExtKeyUsage) ([]byte, []byte, error) {
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

// Fingerprint returns the hex SHA-256 of a certificate's DER encoding, the
// identity the server compares against the chain.
func Fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// short abbreviates a fingerprint for messages.
func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}
