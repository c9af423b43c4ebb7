// Package keyring stores account keys under the home directory: ed25519 keys derived
// from BIP-39 mnemonics, encrypted with a passphrase (age scrypt) or, for development
// with the "test" backend, in plain files.
package keyring

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"filippo.io/age"
	"github.com/cosmos/go-bip39"

	"github.com/kiln-network/kiln/types"
)

// Backends.
const (
	BackendFile = "file" // encrypted with a passphrase (the default)
	BackendTest = "test" // unencrypted: for development and tests only
)

// HDPath is the SLIP-10 ed25519 derivation path of account keys (all hardened, as
// ed25519 requires): purpose 44, coin type 118 as in Cosmos, account 0.
var HDPath = []uint32{44, 118, 0, 0, 0}

// Errors callers branch on.
var (
	ErrNotFound = errors.New("key not found")
	ErrExists   = errors.New("key already exists")
)

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// Info is the public part of a key.
type Info struct {
	Name    string        `json:"name"`
	Address types.Address `json:"address"`
	PubKey  []byte        `json:"pubkey"`
}

type secret struct {
	Info
	Mnemonic string `json:"mnemonic"`
}

// Keyring is a directory of keys.
type Keyring struct {
	dir        string
	backend    string
	passphrase func() (string, error)
}

// Open returns the keyring for home and backend. passphrase is asked only when the file
// backend needs it.
func Open(home, backend string, passphrase func() (string, error)) (*Keyring, error) {
	switch backend {
	case BackendFile, BackendTest:
	default:
		return nil, fmt.Errorf("keyring backend %q: must be %q or %q", backend, BackendFile, BackendTest)
	}
	dir := filepath.Join(home, "keyring-"+backend)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create keyring: %w", err)
	}
	return &Keyring{dir: dir, backend: backend, passphrase: passphrase}, nil
}

// NewMnemonic returns a fresh 24-word BIP-39 mnemonic.
func NewMnemonic() (string, error) {
	ent, err := bip39.NewEntropy(256)
	if err != nil {
		return "", err
	}
	return bip39.NewMnemonic(ent)
}

// DeriveKey derives the account key of a mnemonic along HDPath: the BIP-39 seed (no
// passphrase), then SLIP-10 for ed25519. Whitespace between words does not matter. It
// refuses a phrase that is not BIP-39 (word count, a word not in the English list, or a
// checksum that does not match), naming what is wrong: a mistyped word that is still a
// word would otherwise derive some other, empty account.
func DeriveKey(mnemonic string) (ed25519.PrivateKey, error) {
	mnemonic = strings.Join(strings.Fields(mnemonic), " ")
	if err := checkMnemonic(mnemonic); err != nil {
		return nil, err
	}
	return deriveKey(mnemonic), nil
}

// deriveKey derives the key of a phrase already checked, without checking it again: a
// key stored before the checksum was checked stays readable.
func deriveKey(mnemonic string) ed25519.PrivateKey {
	key, _ := slip10Ed25519(bip39.NewSeed(mnemonic, ""), HDPath)
	return ed25519.NewKeyFromSeed(key)
}

// checkMnemonic returns an error naming what makes m (words separated by single spaces)
// not a BIP-39 English phrase.
func checkMnemonic(m string) error {
	words := strings.Fields(m)
	if n := len(words); n < 12 || n > 24 || n%3 != 0 {
		return fmt.Errorf("invalid mnemonic: %d words, must be 12, 15, 18, 21 or 24", n)
	}
	for i, w := range words {
		if _, ok := bip39.ReverseWordMap[w]; !ok {
			return fmt.Errorf("invalid mnemonic: word %d %q is not in the BIP-39 English word list", i+1, w)
		}
	}
	if _, err := bip39.MnemonicToByteArray(m); err != nil {
		return errors.New("invalid mnemonic: its checksum does not match (a word is wrong or out of place)")
	}
	return nil
}

// slip10Ed25519 returns the ed25519 private key (32 bytes, the RFC 8032 seed) and chain
// code at path from a BIP-32 seed, as SLIP-0010 defines them. Every index is hardened
// (ed25519 has no public derivation), whether or not its top bit is set.
func slip10Ed25519(seed []byte, path []uint32) (key, chainCode []byte) {
	mac := hmac.New(sha512.New, []byte("ed25519 seed"))
	mac.Write(seed)
	I := mac.Sum(nil)
	key, chainCode = I[:32], I[32:]
	for _, idx := range path {
		var data bytes.Buffer
		data.WriteByte(0)
		data.Write(key)
		binary.Write(&data, binary.BigEndian, idx|0x80000000)
		mac := hmac.New(sha512.New, chainCode)
		mac.Write(data.Bytes())
		I := mac.Sum(nil)
		key, chainCode = I[:32], I[32:]
	}
	return key, chainCode
}

func (k *Keyring) path(name, ext string) string { return filepath.Join(k.dir, name+ext) }

// Add creates a key with a fresh mnemonic and returns it with the mnemonic (shown once).
func (k *Keyring) Add(name string) (Info, string, error) {
	m, err := NewMnemonic()
	if err != nil {
		return Info{}, "", err
	}
	info, err := k.Import(name, m)
	return info, m, err
}

// Import stores the key of mnemonic under name.
func (k *Keyring) Import(name, mnemonic string) (Info, error) {
	if !nameRe.MatchString(name) {
		return Info{}, fmt.Errorf("key name %q: must be 1-64 of [a-zA-Z0-9_.-]", name)
	}
	if _, err := os.Stat(k.path(name, ".info")); err == nil {
		return Info{}, fmt.Errorf("%w: %q", ErrExists, name)
	}
	priv, err := DeriveKey(mnemonic)
	if err != nil {
		return Info{}, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	info := Info{Name: name, Address: types.AddressFromPubKey(pub), PubKey: pub}
	sec, _ := json.Marshal(secret{Info: info, Mnemonic: strings.Join(strings.Fields(mnemonic), " ")})
	if k.backend == BackendFile {
		pass, err := k.passphrase()
		if err != nil {
			return Info{}, fmt.Errorf("passphrase: %w", err)
		}
		if len(pass) < 8 {
			return Info{}, errors.New("passphrase: must be at least 8 characters")
		}
		r, err := age.NewScryptRecipient(pass)
		if err != nil {
			return Info{}, err
		}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, r)
		if err != nil {
			return Info{}, err
		}
		w.Write(sec)
		if err := w.Close(); err != nil {
			return Info{}, err
		}
		sec = buf.Bytes()
	}
	if err := os.WriteFile(k.path(name, ".key"), sec, 0o600); err != nil {
		return Info{}, fmt.Errorf("write key: %w", err)
	}
	pubJSON, _ := json.Marshal(info)
	if err := os.WriteFile(k.path(name, ".info"), pubJSON, 0o600); err != nil {
		return Info{}, fmt.Errorf("write key info: %w", err)
	}
	return info, nil
}

// Show returns the public info of name; it never needs the passphrase.
func (k *Keyring) Show(name string) (Info, error) {
	b, err := os.ReadFile(k.path(name, ".info"))
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %q in %s", ErrNotFound, name, k.dir)
	}
	if err != nil {
		return Info{}, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("key %q: corrupt info file: %w", name, err)
	}
	return info, nil
}

// List returns every key's info sorted by name.
func (k *Keyring) List() ([]Info, error) {
	ents, err := os.ReadDir(k.dir)
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".info"); ok {
			info, err := k.Show(n)
			if err != nil {
				return nil, err
			}
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// PrivKey returns name's private key, asking for the passphrase with the file backend.
func (k *Keyring) PrivKey(name string) (ed25519.PrivateKey, Info, error) {
	info, err := k.Show(name)
	if err != nil {
		return nil, Info{}, err
	}
	b, err := os.ReadFile(k.path(name, ".key"))
	if err != nil {
		return nil, Info{}, fmt.Errorf("key %q: %w", name, err)
	}
	if k.backend == BackendFile {
		pass, err := k.passphrase()
		if err != nil {
			return nil, Info{}, fmt.Errorf("passphrase: %w", err)
		}
		id, err := age.NewScryptIdentity(pass)
		if err != nil {
			return nil, Info{}, err
		}
		r, err := age.Decrypt(bytes.NewReader(b), id)
		if err != nil {
			return nil, Info{}, fmt.Errorf("key %q: wrong passphrase or corrupt file", name)
		}
		if b, err = io.ReadAll(r); err != nil {
			return nil, Info{}, err
		}
	}
	var sec secret
	if err := json.Unmarshal(b, &sec); err != nil {
		return nil, Info{}, fmt.Errorf("key %q: corrupt key file", name)
	}
	priv := deriveKey(sec.Mnemonic)
	if types.AddressFromPubKey(priv.Public().(ed25519.PublicKey)) != info.Address {
		return nil, Info{}, fmt.Errorf("key %q: key file does not match its info file", name)
	}
	return priv, info, nil
}

// Delete removes name.
func (k *Keyring) Delete(name string) error {
	if _, err := k.Show(name); err != nil {
		return err
	}
	os.Remove(k.path(name, ".key"))
	return os.Remove(k.path(name, ".info"))
}
