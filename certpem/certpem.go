// Package certpem parses and makes PEM-encoded X.509 certificates: the one place Kiln reads one, on chain and off, and makes one (Generate).
package certpem

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MaxBytes bounds a certificate's PEM: a P-256 or ed25519 certificate is
// well under 1 KiB; a few KiB of extensions is the most a real one carries.
const MaxBytes = 8 << 10

// Sentinel errors callers branch on; each error Parse returns wraps one.
var (
	// ErrSize is wrapped for an empty PEM or one over MaxBytes.
	ErrSize = errors.New("certificate PEM size")
	// ErrNotCertificate is wrapped when the PEM does not start with one
	// CERTIFICATE block, or holds anything but whitespace after it.
	ErrNotCertificate = errors.New("not one PEM CERTIFICATE block")
	// ErrX509 is wrapped when the block is not a valid X.509 certificate.
	ErrX509 = errors.New("invalid X.509 certificate")
)

// Parse returns the certificate pemBytes holds: exactly one CERTIFICATE
// block, of at most MaxBytes, with nothing but whitespace after it. It checks
// no validity period, key type or chain: callers that need them do.
func Parse(pemBytes []byte) (*x509.Certificate, error) {
	if len(pemBytes) == 0 || len(pemBytes) > MaxBytes {
		return nil, fmt.Errorf("%w: must be 1 to %d bytes (got %d)", ErrSize, MaxBytes, len(pemBytes))
	}
	blk, rest := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: no CERTIFICATE block at the start", ErrNotCertificate)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("%w: trailing data after the certificate", ErrNotCertificate)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrX509, err)
	}
	return c, nil
}
