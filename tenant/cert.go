package tenant

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/cert"
)

// ClientCertValidity is how long a generated tenant certificate is valid.
const ClientCertValidity = 365 * 24 * time.Hour

// GenerateClientCert returns a self-signed client certificate for the account
// owner (its address, the Subject CommonName the provider checks), valid for
// validFor, and its key, PEM-encoded (certpem.Generate). Its certificate is
// what `kiln tx cert publish` puts on chain.
func GenerateClientCert(owner string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	return certpem.Generate(owner, nil, validFor, x509.ExtKeyUsageClientAuth)
}

// EnsureCert returns the tenant's client certificate for mTLS with providers. It keeps
// the certificate and key in dir (named by address) and publishes the certificate on
// chain when the chain does not hold this one: a provider only serves a lease to the
// certificate its owner published.
func EnsureCert(ctx context.Context, c *client.Client, key ed25519.PrivateKey, dir string, progress func(string)) (tls.Certificate, error) {
	addr := types.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	certPath, keyPath := certPaths(dir, addr)
	certPEM, err1 := os.ReadFile(certPath)
	keyPEM, err2 := os.ReadFile(keyPath)
	fresh := false
	if err1 != nil || err2 != nil || expiresSoon(certPEM) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return tls.Certificate{}, err
		}
		var err error
		if certPEM, keyPEM, err = GenerateClientCert(addr.String(), ClientCertValidity); err != nil {
			return tls.Certificate{}, fmt.Errorf("generate client certificate: %w", err)
		}
		if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			return tls.Certificate{}, err
		}
		if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
			return tls.Certificate{}, err
		}
		fresh = true
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate in %s: %w", dir, err)
	}
	var onChain cert.Certificate
	err = c.QueryJSON(ctx, client.PathCert(addr), &onChain)
	var qe *client.QueryError
	published := err == nil && client.CheckCertRecord(onChain, pair.Certificate[0], time.Now()) == nil
	if err != nil && !(errors.As(err, &qe) && qe.Code == types.CodeNotFound) {
		return tls.Certificate{}, err
	}
	if !published || fresh {
		if progress != nil {
			progress(fmt.Sprintf("publishing client certificate %s… on chain", api.Fingerprint(pair.Certificate[0])[:12]))
		}
		if _, err := c.Send(ctx, key, client.SignOptions{}, &cert.MsgPublishCert{Owner: addr, CertPEM: certPEM}); err != nil {
			return tls.Certificate{}, fmt.Errorf("publish client certificate: %w", err)
		}
	}
	return pair, nil
}

func expiresSoon(certPEM []byte) bool {
	c, err := certpem.Parse(certPEM)
	return err != nil || time.Until(c.NotAfter) < 24*time.Hour
}
