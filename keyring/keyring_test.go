package keyring

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"

	"github.com/cosmos/go-bip39"

	"github.com/kiln-network/kiln/types"
)

// Golden mnemonic -> key -> address vectors. A change here moves every user's address:
// their funds would sit at keys they can no longer derive. Derived once with this code
// and cross-checked with an independent implementation (Python: hashlib's PBKDF2 for the
// BIP-39 seed, hmac for SLIP-10, the cryptography package's ed25519, BIP-173's reference
// bech32), itself checked against SLIP-0010 test vector 1.
func TestDeriveKeyGolden(t *testing.T) {
	tests := []struct {
		mnemonic, seed, pub, addr string
	}{
		{"abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
			"bb749d9a2787819674d3c3447f5f2d245de2ccdec42e62aa6c89bf8761be14bd",
			"f464c9658b25ea3a6f97f966600481d6136a57c86886b09994ac1f480adb0d58",
			"kiln1t9p72w4d5gnse4m8lqeamkqsmksf2tcmjnwxst"},
		{"legal winner thank year wave sausage worth useful legal winner thank yellow",
			"7322bef4ff7766d7429b30b779cd6847dbab216c89537b6b96255486f4ec0d5c",
			"baec3e38a9ad2dff69fa03b8ff7dc60a671e6548c426f92ac5968731438ad6f0",
			"kiln1wvz4jkqfch6wmk945mnty5cytxd4g4ryj94w8z"},
		{"abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon " +
			"abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art",
			"3bc1e4ddfeaa9e1279e07664c003088ad9576bf39e6386911c8e7017865ce8b4",
			"1884827c3324b13454be77d7656d0ddeb3bb3d0774bcff0f2c547515d2b2015c",
			"kiln1pywgxt6s0n9qmv2vqgd8vpvcw73j2t26wm0cvv"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			for _, m := range []string{tt.mnemonic, "  " + strings.ReplaceAll(tt.mnemonic, " ", " \t ") + "\n"} {
				k, err := DeriveKey(m)
				if err != nil {
					t.Fatalf("DeriveKey(%q) = %v", m, err)
				}
				pub := k.Public().(ed25519.PublicKey)
				if got := hex.EncodeToString(k.Seed()); got != tt.seed {
					t.Errorf("DeriveKey(%q) key = %s, want %s", m, got, tt.seed)
				}
				if got := hex.EncodeToString(pub); got != tt.pub {
					t.Errorf("DeriveKey(%q) public key = %s, want %s", m, got, tt.pub)
				}
				if got := types.AddressFromPubKey(pub).String(); got != tt.addr {
					t.Errorf("DeriveKey(%q) address = %s, want %s", m, got, tt.addr)
				}
			}
		})
	}
}

// A phrase that is not BIP-39 is refused with what is wrong; a valid word in the wrong
// place fails the checksum instead of deriving some other account.
func TestDeriveKeyRefusals(t *testing.T) {
	tests := []struct{ mnemonic, want string }{
		{"abandon abandon", "2 words, must be 12, 15, 18, 21 or 24"},
		{strings.Repeat("abandon ", 13), "13 words"},
		{"abandon abandon abandon abandon abandon abandn abandon abandon abandon abandon abandon about", `word 6 "abandn" is not in the BIP-39 English word list`},
		{strings.Repeat("abandon ", 12), "checksum does not match"},
		{"about abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon", "checksum does not match"},
		{"legal winner thank year wave sausage worth useful legal winner yellow thank", "checksum does not match"},
	}
	for _, tt := range tests {
		_, err := DeriveKey(tt.mnemonic)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DeriveKey(%q) = %v, want an error containing %q", tt.mnemonic, err, tt.want)
		}
	}
}

// A key stored before phrases were checksummed (Import then checked only the words) is
// still readable: nothing stored is lost.
func TestPrivKeyReadsKeyStoredWithoutChecksum(t *testing.T) {
	kr, err := Open(t.TempDir(), BackendTest, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := strings.TrimSpace(strings.Repeat("abandon ", 12))
	priv := deriveKey(m)
	pub := priv.Public().(ed25519.PublicKey)
	info := Info{Name: "old", Address: types.AddressFromPubKey(pub), PubKey: pub}
	sec, _ := json.Marshal(secret{Info: info, Mnemonic: m})
	pubJSON, _ := json.Marshal(info)
	if err := os.WriteFile(kr.path("old", ".key"), sec, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kr.path("old", ".info"), pubJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	got, _, err := kr.PrivKey("old")
	if err != nil || !got.Equal(priv) {
		t.Fatalf("PrivKey(old) = %v, want the stored key", err)
	}
}

// The seed-to-key step against SLIP-0010's published ed25519 test vectors 1 and 2
// (https://github.com/satoshilabs/slips/blob/master/slip-0010.md), every chain.
func TestSLIP10Ed25519Vectors(t *testing.T) {
	const h = 0x80000000
	tests := []struct {
		seed           string
		path           []uint32
		chainCode, key string
	}{
		{"000102030405060708090a0b0c0d0e0f", nil,
			"90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb", "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"},
		{"000102030405060708090a0b0c0d0e0f", []uint32{0 | h},
			"8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69", "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3"},
		{"000102030405060708090a0b0c0d0e0f", []uint32{0 | h, 1 | h},
			"a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14", "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2"},
		{"000102030405060708090a0b0c0d0e0f", []uint32{0 | h, 1 | h, 2 | h},
			"2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c", "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9"},
		{"000102030405060708090a0b0c0d0e0f", []uint32{0 | h, 1 | h, 2 | h, 2 | h},
			"8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc", "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662"},
		{"000102030405060708090a0b0c0d0e0f", []uint32{0 | h, 1 | h, 2 | h, 2 | h, 1000000000 | h},
			"68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230", "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793"},
		{vector2Seed, nil,
			"ef70a74db9c3a5af931b5fe73ed8e1a53464133654fd55e7a66f8570b8e33c3b", "171cb88b1b3c1db25add599712e36245d75bc65a1a5c9e18d76f9f2b1eab4012"},
		{vector2Seed, []uint32{0 | h},
			"0b78a3226f915c082bf118f83618a618ab6dec793752624cbeb622acb562862d", "1559eb2bbec5790b0c65d8693e4d0875b1747f4970ae8b650486ed7470845635"},
		{vector2Seed, []uint32{0 | h, 2147483647 | h},
			"138f0b2551bcafeca6ff2aa88ba8ed0ed8de070841f0c4ef0165df8181eaad7f", "ea4f5bfe8694d8bb74b7b59404632fd5968b774ed545e810de9c32a4fb4192f4"},
		{vector2Seed, []uint32{0 | h, 2147483647 | h, 1 | h},
			"73bd9fff1cfbde33a1b846c27085f711c0fe2d66fd32e139d3ebc28e5a4a6b90", "3757c7577170179c7868353ada796c839135b3d30554bbb74a4b1e4a5a58505c"},
		{vector2Seed, []uint32{0 | h, 2147483647 | h, 1 | h, 2147483646 | h},
			"0902fe8a29f9140480a00ef244bd183e8a13288e4412d8389d140aac1794825a", "5837736c89570de861ebc173b1086da4f505d4adb387c6a1b1342d5e4ac9ec72"},
		{vector2Seed, []uint32{0 | h, 2147483647 | h, 1 | h, 2147483646 | h, 2 | h},
			"5d70af781f3a37b829f0d060924d5e960bdc02e85423494afc0b1a41bbe196d4", "551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d"},
	}
	for _, tt := range tests {
		seed, _ := hex.DecodeString(tt.seed)
		key, chain := slip10Ed25519(seed, tt.path)
		if got := hex.EncodeToString(key); got != tt.key {
			t.Errorf("slip10Ed25519(%s…, %v) key = %s, want %s", tt.seed[:8], tt.path, got, tt.key)
		}
		if got := hex.EncodeToString(chain); got != tt.chainCode {
			t.Errorf("slip10Ed25519(%s…, %v) chain code = %s, want %s", tt.seed[:8], tt.path, got, tt.chainCode)
		}
	}
}

const vector2Seed = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542"

// The mnemonic-to-seed step (go-bip39) against BIP-39's published test vector 1
// (entropy 00…00, passphrase "TREZOR").
func TestBIP39SeedVector(t *testing.T) {
	const m = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	const want = "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
	if got := hex.EncodeToString(bip39.NewSeed(m, "TREZOR")); got != want {
		t.Fatalf("NewSeed(%q, TREZOR) = %s, want %s", m, got, want)
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

// FuzzDeriveKey: any input is refused or accepted without panicking, and an accepted
// phrase is exactly the BIP-39 encoding of its entropy (words, count and checksum all
// checked), so no mistyped phrase derives a key.
func FuzzDeriveKey(f *testing.F) {
	f.Add("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about")
	f.Add("legal winner thank year wave sausage worth useful legal winner thank yellow")
	f.Add(strings.Repeat("zoo ", 23) + "vote")
	f.Add(strings.Repeat("abandon ", 12))
	f.Add("")
	f.Fuzz(func(t *testing.T, m string) {
		k, err := DeriveKey(m)
		if err != nil {
			return
		}
		norm := strings.Join(strings.Fields(m), " ")
		if again, _ := bip39.NewMnemonic(entropyOf(t, norm)); again != norm {
			t.Fatalf("DeriveKey(%q) accepted a phrase that is not its entropy's encoding %q", m, again)
		}
		if !k.Equal(deriveKey(norm)) {
			t.Fatalf("DeriveKey(%q) differs from the key of its normalized phrase", m)
		}
	})
}

// entropyOf returns the entropy a phrase of known words encodes: the first 32/33 of its
// 11-bit word indices' bits.
func entropyOf(t *testing.T, m string) []byte {
	words := strings.Fields(m)
	b := new(big.Int)
	for _, w := range words {
		idx, ok := bip39.ReverseWordMap[w]
		if !ok {
			t.Fatalf("word %q is not in the list", w)
		}
		b.Lsh(b, 11).Or(b, big.NewInt(int64(idx)))
	}
	bits := len(words) * 11
	ent := bits * 32 / 33
	return b.Rsh(b, uint(bits-ent)).FillBytes(make([]byte, ent/8))
}
