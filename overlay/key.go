package overlay

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// Key is a member's Curve25519 private key. It never leaves the provider that
// made it: only its PublicKey goes on chain.
type Key [32]byte

// PublicKey is a member's Curve25519 public key, exchanged through the lease.
type PublicKey [32]byte

// GenerateKey returns a new random private key, clamped as Curve25519 expects.
func GenerateKey() (Key, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Key{}, fmt.Errorf("generate overlay key: %w", err)
	}
	return KeyFrom(b), nil
}

// KeyFrom returns the private key of 32 secret bytes (random, or derived from a
// secret), clamped as Curve25519 expects.
func KeyFrom(b [32]byte) Key {
	k := Key(b)
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k
}

// IsZero reports whether k is the zero key (never a valid key).
func (k Key) IsZero() bool { return k == Key{} }

// Public returns k's public key; the zero Key gives the zero PublicKey.
func (k Key) Public() PublicKey {
	if k.IsZero() {
		return PublicKey{}
	}
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		// NB: X25519 accepts every 32-byte string; only a wrong length fails.
		panic(fmt.Sprintf("overlay: X25519 private key: %v", err))
	}
	var p PublicKey
	copy(p[:], priv.PublicKey().Bytes())
	return p
}

// String returns the key in base64, as WireGuard tools print it.
func (p PublicKey) String() string { return base64.StdEncoding.EncodeToString(p[:]) }

// IsZero reports whether p is the zero key (never a valid key).
func (p PublicKey) IsZero() bool { return p == PublicKey{} }

// MarshalText encodes p as its String.
func (p PublicKey) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText decodes what MarshalText wrote, with ParsePublicKey's checks.
func (p *PublicKey) UnmarshalText(b []byte) error {
	k, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*p = k
	return nil
}

// ParsePublicKey parses a base64 public key of 32 bytes; the zero key is refused.
func ParsePublicKey(s string) (PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return PublicKey{}, fmt.Errorf("overlay public key %q: not base64: %w", s, err)
	}
	if len(b) != 32 {
		return PublicKey{}, fmt.Errorf("overlay public key %q: must be 32 bytes (got %d)", s, len(b))
	}
	var p PublicKey
	copy(p[:], b)
	if p.IsZero() {
		return PublicKey{}, fmt.Errorf("overlay public key %q: must not be zero", s)
	}
	return p, nil
}

// hex encodes keys as WireGuard's configuration protocol (UAPI) wants them.
func (k Key) hex() string       { return hex.EncodeToString(k[:]) }
func (p PublicKey) hex() string { return hex.EncodeToString(p[:]) }
