package keyring

import (
	"encoding/hex"
	"errors"
	"testing"
)

// SLIP-10 test vector 1 for ed25519 uses a raw seed; we check our derivation is stable
// for a fixed mnemonic instead (a change would move every user's address).
func TestDeriveKeyStable(t *testing.T) {
	m := "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	k1, err := DeriveKey(m)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := DeriveKey("  " + m + "\n")
	if hex.EncodeToString(k1) != hex.EncodeToString(k2) {
		t.Fatal("whitespace changes the derived key")
	}
	if _, err := DeriveKey("abandon abandon"); err == nil {
		t.Fatal("DeriveKey accepted an invalid mnemonic")
	}
}

func TestKeyringBackends(t *testing.T) {
	for _, backend := range []string{BackendTest, BackendFile} {
		t.Run(backend, func(t *testing.T) {
			pass := "correct horse"
			kr, err := Open(t.TempDir(), backend, func() (string, error) { return pass, nil })
			if err != nil {
				t.Fatal(err)
			}
			info, mnemonic, err := kr.Add("alice")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := kr.Add("alice"); !errors.Is(err, ErrExists) {
				t.Fatalf("Add twice = %v, want ErrExists", err)
			}
			priv, got, err := kr.PrivKey("alice")
			if err != nil {
				t.Fatal(err)
			}
			if got.Address != info.Address {
				t.Fatalf("address %s, want %s", got.Address, info.Address)
			}
			want, _ := DeriveKey(mnemonic)
			if !priv.Equal(want) {
				t.Fatal("stored key differs from the mnemonic's")
			}
			if backend == BackendFile {
				pass = "wrong passphrase"
				if _, _, err := kr.PrivKey("alice"); err == nil {
					t.Fatal("wrong passphrase decrypted the key")
				}
			}
			list, _ := kr.List()
			if len(list) != 1 || list[0].Name != "alice" {
				t.Fatalf("List = %v", list)
			}
			if _, err := kr.Show("bob"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Show(bob) = %v, want ErrNotFound", err)
			}
			if _, err := kr.Import("../evil", mnemonic); err == nil {
				t.Fatal("Import accepted a path as a name")
			}
		})
	}
}
