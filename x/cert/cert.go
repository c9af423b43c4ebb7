// Package cert publishes each account's X.509 client certificate on chain, so that a
// provider's mTLS server can tell which account a client is.
//
// Contracts:
//
//   - An account has at most one certificate record. Publishing replaces the previous
//     certificate (its record is overwritten, so the old one stops being valid at once);
//     revoking marks the record revoked. A provider MUST accept a client certificate
//     only if it is byte-for-byte the DER of a record in state "valid" whose validity
//     period covers the current time.
//   - A published certificate MUST parse as exactly one PEM CERTIFICATE, MUST be within
//     its validity period at the block's time, and its public key MUST be ECDSA P-256 or
//     ed25519. Anything else is refused with ErrInvalidCert.
//   - A published certificate's Subject CommonName MUST be the publishing account's
//     bech32 address: it is how a provider tells whose certificate a client presents.
//     One naming any other account is refused with ErrInvalidMsg (CheckSubject).
//   - NB: CheckTx has no block time, so it checks everything but the validity period;
//     FinalizeBlock checks that too.
package cert

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// ModuleName is cert's name in state.
const ModuleName = "cert"

// MaxPEMBytes bounds a certificate: a P-256 or ed25519 client certificate is well
// under 2 KiB; 8 KiB leaves room for long subjects and extensions.
const MaxPEMBytes = certpem.MaxBytes

var certPrefix = []byte("cert/acct/")

// Certificate states.
const (
	StateValid   = "valid"
	StateRevoked = "revoked"
)

// Certificate is an account's published client certificate.
type Certificate struct {
	Owner     types.Address `json:"owner"`
	PEM       string        `json:"pem"`
	State     string        `json:"state"`
	Serial    string        `json:"serial"`     // hex
	SHA256    string        `json:"sha256"`     // hex digest of the DER
	KeyType   string        `json:"key_type"`   // ecdsa-p256 or ed25519
	Subject   string        `json:"subject"`    // for people reading queries
	NotBefore time.Time     `json:"not_before"` // from the certificate
	NotAfter  time.Time     `json:"not_after"`  // from the certificate
	Revoked   int64         `json:"revoked_height,string,omitempty"`
	// CreatedHeight is when this certificate was published.
	CreatedHeight int64 `json:"created_height,string"`
	UpdatedHeight int64 `json:"updated_height,string"`
}

func key(a types.Address) []byte { return append(append([]byte{}, certPrefix...), a[:]...) }

// Get returns owner's certificate record (valid or revoked).
func Get(ctx *types.Context, owner types.Address) (Certificate, bool) {
	v, ok := ctx.Store.Get(key(owner))
	if !ok {
		return Certificate{}, false
	}
	var c Certificate
	if err := json.Unmarshal(v, &c); err != nil {
		panic(fmt.Sprintf("cert: corrupt record of %s: %v", owner, err))
	}
	return c, true
}

func set(ctx *types.Context, c Certificate) {
	c.UpdatedHeight = ctx.Height
	b, _ := json.Marshal(c)
	ctx.Store.Set(key(c.Owner), b)
}

// Parse checks pemBytes as a client certificate at time now (zero: skip the validity
// period) and returns it with its key type. Errors carry ErrInvalidCert.
func Parse(pemBytes []byte, now time.Time) (*x509.Certificate, string, error) {
	c, err := certpem.Parse(pemBytes)
	if err != nil {
		return nil, "", types.Wrapf(types.ErrInvalidCert, "cert_pem: %v", err)
	}
	var kt string
	switch pub := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, "", types.Wrapf(types.ErrInvalidCert, "public key: ECDSA on %s, must be P-256", pub.Curve.Params().Name)
		}
		kt = "ecdsa-p256"
	case ed25519.PublicKey:
		kt = "ed25519"
	default:
		return nil, "", types.Wrapf(types.ErrInvalidCert, "public key: %s, must be ECDSA P-256 or ed25519", c.PublicKeyAlgorithm)
	}
	if !now.IsZero() {
		if now.After(c.NotAfter) {
			return nil, "", types.Wrapf(types.ErrInvalidCert, "certificate expired at %s (block time %s)", c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if now.Before(c.NotBefore) {
			return nil, "", types.Wrapf(types.ErrInvalidCert, "certificate not valid before %s (block time %s)", c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	return c, kt, nil
}

// CheckSubject returns an ErrInvalidMsg naming field and value unless c's Subject
// CommonName is owner's bech32 address. A certificate naming another account would
// let its publisher pass, on a provider's mTLS API, for the account it names.
func CheckSubject(c *x509.Certificate, owner types.Address) error {
	if cn := c.Subject.CommonName; cn != owner.String() {
		return types.InvalidField("cert_pem.subject.common_name", fmt.Sprintf("%q", cn), "must be the publishing account's address "+owner.String())
	}
	return nil
}

// MsgPublishCert publishes (or replaces) the signer's client certificate.
type MsgPublishCert struct {
	Owner   types.Address `json:"owner"`
	CertPEM []byte        `json:"cert_pem"`
}

// MsgRevokeCert revokes the signer's client certificate.
type MsgRevokeCert struct {
	Owner types.Address `json:"owner"`
}

func (m *MsgPublishCert) Type() types.MsgType { return types.MsgTypeCertPublish }
func (m *MsgRevokeCert) Type() types.MsgType  { return types.MsgTypeCertRevoke }

func (m *MsgPublishCert) Signer() types.Address { return m.Owner }
func (m *MsgRevokeCert) Signer() types.Address  { return m.Owner }

// ValidateBasic implements types.Msg. It checks only the size: parsing is the
// handler's, so garbage and expired certificates share ErrInvalidCert.
func (m *MsgPublishCert) ValidateBasic() error {
	if len(m.CertPEM) == 0 || len(m.CertPEM) > MaxPEMBytes {
		return types.InvalidField("cert_pem", fmt.Sprintf("%d bytes", len(m.CertPEM)), fmt.Sprintf("must be 1 to %d bytes", MaxPEMBytes))
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgRevokeCert) ValidateBasic() error { return nil }

func (m *MsgPublishCert) MarshalTo(w *codec.Writer) { w.Fixed(m.Owner[:]); w.WriteBytes(m.CertPEM) }
func (m *MsgRevokeCert) MarshalTo(w *codec.Writer)  { w.Fixed(m.Owner[:]) }

// DecodePublish decodes a MsgPublishCert body.
func DecodePublish(r *codec.Reader) types.Msg {
	return &MsgPublishCert{Owner: bank.ReadAddress(r), CertPEM: r.Bytes(MaxPEMBytes)}
}

// DecodeRevoke decodes a MsgRevokeCert body.
func DecodeRevoke(r *codec.Reader) types.Msg { return &MsgRevokeCert{Owner: bank.ReadAddress(r)} }

// Handle executes a cert message.
func Handle(ctx *types.Context, msg types.Msg) error {
	switch m := msg.(type) {
	case *MsgPublishCert:
		c, kt, err := Parse(m.CertPEM, ctx.Time)
		if err != nil {
			return err
		}
		if err := CheckSubject(c, m.Owner); err != nil {
			return err
		}
		sum := sha256.Sum256(c.Raw)
		rec := Certificate{Owner: m.Owner, PEM: string(m.CertPEM), State: StateValid, Serial: c.SerialNumber.Text(16),
			SHA256: hex.EncodeToString(sum[:]), KeyType: kt, Subject: c.Subject.String(),
			NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), CreatedHeight: ctx.Height}
		set(ctx, rec)
		ctx.Emit("cert_published", "owner", m.Owner.String(), "sha256", rec.SHA256, "not_after", rec.NotAfter.Format(time.RFC3339))
		return nil
	case *MsgRevokeCert:
		c, ok := Get(ctx, m.Owner)
		if !ok || c.State != StateValid {
			return types.Wrapf(types.ErrNotFound, "account %s has no valid certificate to revoke", m.Owner)
		}
		c.State = StateRevoked
		c.Revoked = ctx.Height
		set(ctx, c)
		ctx.Emit("cert_revoked", "owner", m.Owner.String(), "sha256", c.SHA256)
		return nil
	}
	return types.Wrapf(types.ErrUnknownMsgType, "cert cannot handle %T", msg)
}
