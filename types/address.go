package types

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/btcsuite/btcd/btcutil/bech32"
)

// Bech32Prefix is the human-readable part of every Kiln account address.
const Bech32Prefix = "kiln"

// AddressLen is the length of an address: the first 20 bytes of SHA-256 of the public key,
// the same derivation CometBFT uses for ed25519 validator addresses.
const AddressLen = 20

// Address identifies an account.
type Address [AddressLen]byte

// AddressFromPubKey derives the address of an ed25519 public key.
func AddressFromPubKey(pub []byte) Address {
	sum := sha256.Sum256(pub)
	var a Address
	copy(a[:], sum[:AddressLen])
	return a
}

// ModuleAddress is the address of a module account (fee collector, community pool, ...).
// No private key exists for it: only the module's code moves its funds.
func ModuleAddress(name string) Address {
	sum := sha256.Sum256([]byte("kiln/module/" + name))
	var a Address
	copy(a[:], sum[:AddressLen])
	return a
}

// String returns the bech32 form, e.g. kiln1....
func (a Address) String() string {
	conv, err := bech32.ConvertBits(a[:], 8, 5, true)
	if err != nil {
		panic(err) // NB: 8→5 bit conversion of 20 bytes cannot fail
	}
	s, err := bech32.Encode(Bech32Prefix, conv)
	if err != nil {
		panic(err)
	}
	return s
}

// IsZero reports whether a is the zero address.
func (a Address) IsZero() bool { return a == Address{} }

// Compare orders addresses bytewise.
func (a Address) Compare(b Address) int { return bytes.Compare(a[:], b[:]) }

// ParseAddress parses a bech32 kiln address.
func ParseAddress(s string) (Address, error) {
	var a Address
	hrp, data, err := bech32.Decode(s)
	if err != nil {
		return a, fmt.Errorf("address %q: not valid bech32: %v", s, err)
	}
	if hrp != Bech32Prefix {
		return a, fmt.Errorf("address %q: prefix %q, want %q", s, hrp, Bech32Prefix)
	}
	raw, err := bech32.ConvertBits(data, 5, 8, false)
	if err != nil {
		return a, fmt.Errorf("address %q: %v", s, err)
	}
	if len(raw) != AddressLen {
		return a, fmt.Errorf("address %q: %d bytes, want %d", s, len(raw), AddressLen)
	}
	copy(a[:], raw)
	return a, nil
}

// MarshalJSON encodes the bech32 form.
func (a Address) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

// UnmarshalJSON decodes the bech32 form.
func (a *Address) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := ParseAddress(s)
	if err != nil {
		return err
	}
	*a = p
	return nil
}
