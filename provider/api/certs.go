package api

import (
	"crypto/sha256"
	"encoding/hex"
)

// Fingerprint returns the hex SHA-256 of a certificate's DER encoding, the
// identity the server compares against the chain.
func Fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}
