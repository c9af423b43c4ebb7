package tenant

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	xtee "github.com/kiln-network/kiln/x/tee"
)

// Input sealed to an attestation's key is readable with the identity the attested
// environment holds, and with no other; a lapsed attestation or a measurement the
// tenant does not accept gets nothing sealed.
func TestSealTo(t *testing.T) {
	inside, _ := age.GenerateX25519Identity()
	outside, _ := age.GenerateX25519Identity()
	at := xtee.Attestation{SealKey: inside.Recipient().String(), Measurement: "aa", State: xtee.StateActive, ExpiresHeight: 100}
	var buf bytes.Buffer
	if err := SealTo(at, 50, []string{"aa"}, strings.NewReader("secret weights"), &buf); err != nil {
		t.Fatal(err)
	}
	sealed := buf.Bytes()
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("plaintext in the sealed output")
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), inside)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); string(got) != "secret weights" {
		t.Fatalf("opened %q", got)
	}
	if _, err := age.Decrypt(bytes.NewReader(sealed), outside); err == nil {
		t.Fatal("another identity opened the sealed input")
	}
	if err := SealTo(at, 100, nil, strings.NewReader("x"), io.Discard); err == nil || !strings.Contains(err.Error(), "expires") {
		t.Errorf("SealTo(expired) = %v", err)
	}
	if err := SealTo(at, 50, []string{"bb"}, strings.NewReader("x"), io.Discard); err == nil || !strings.Contains(err.Error(), "not one of the 1 allowed") {
		t.Errorf("SealTo(other measurement) = %v", err)
	}
}
