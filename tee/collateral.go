package tee

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Collateral is what verifying a report needs besides the vendor root certificates,
// supplied offline (read from a directory with LoadCollateral, or carried in a
// transaction). Every field may be empty; a check that needs a missing one refuses
// the report as malformed, naming the file.
type Collateral struct {
	// VCEK is the SEV-SNP chip's endorsement key certificate (DER), from AMD's KDS
	// for the chip and TCB of the report (vcek.der).
	VCEK []byte `json:"vcek,omitempty"`
	// SEVRoots is the AMD ASK and ARK in KDS cert_chain form (PEM, ASK then ARK);
	// empty: the roots go-sev-guest embeds (ask_ark.pem).
	SEVRoots []byte `json:"sev_roots,omitempty"`
	// SEVCRL is the ARK's CRL (DER), for CheckRevocations (sev_crl.der).
	SEVCRL []byte `json:"sev_crl,omitempty"`

	// TDX collateral from Intel's PCS: TCB info and QE identity (JSON bodies) with
	// the issuer chains PCS sends in their headers (PEM), the PCK CRL (DER) with its
	// issuer chain (PEM), and the root CA CRL (DER).
	TDXTcbInfo         []byte `json:"tdx_tcb_info,omitempty"`          // tcb_info.json
	TDXTcbInfoChain    []byte `json:"tdx_tcb_info_chain,omitempty"`    // tcb_info_chain.pem
	TDXQeIdentity      []byte `json:"tdx_qe_identity,omitempty"`       // qe_identity.json
	TDXQeIdentityChain []byte `json:"tdx_qe_identity_chain,omitempty"` // qe_identity_chain.pem
	TDXPckCrl          []byte `json:"tdx_pck_crl,omitempty"`           // pck_crl.der
	TDXPckCrlChain     []byte `json:"tdx_pck_crl_chain,omitempty"`     // pck_crl_chain.pem
	TDXRootCrl         []byte `json:"tdx_root_crl,omitempty"`          // root_crl.der
}

// collateralFiles maps each file of a collateral directory to its field.
func (c *Collateral) files() map[string]*[]byte {
	return map[string]*[]byte{
		"vcek.der": &c.VCEK, "ask_ark.pem": &c.SEVRoots, "sev_crl.der": &c.SEVCRL,
		"tcb_info.json": &c.TDXTcbInfo, "tcb_info_chain.pem": &c.TDXTcbInfoChain,
		"qe_identity.json": &c.TDXQeIdentity, "qe_identity_chain.pem": &c.TDXQeIdentityChain,
		"pck_crl.der": &c.TDXPckCrl, "pck_crl_chain.pem": &c.TDXPckCrlChain, "root_crl.der": &c.TDXRootCrl,
	}
}

// CollateralFiles are the file names LoadCollateral reads, each optional.
var CollateralFiles = []string{"vcek.der", "ask_ark.pem", "sev_crl.der", "tcb_info.json", "tcb_info_chain.pem",
	"qe_identity.json", "qe_identity_chain.pem", "pck_crl.der", "pck_crl_chain.pem", "root_crl.der"}

// maxCollateralFile bounds each collateral file: the largest real one (a TCB info
// JSON) is a few KiB.
const maxCollateralFile = 1 << 20

// LoadCollateral reads the files of CollateralFiles that exist in dir. A file over
// 1 MiB, or a directory without any of them, is an error naming it.
func LoadCollateral(dir string) (Collateral, error) {
	var c Collateral
	found := 0
	for name, dst := range c.files() {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return c, fmt.Errorf("collateral %s: %w", p, err)
		}
		if st.Size() > maxCollateralFile {
			return c, fmt.Errorf("collateral %s: %d bytes, more than the %d a collateral file may have", p, st.Size(), maxCollateralFile)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return c, fmt.Errorf("collateral %s: %w", p, err)
		}
		*dst = b
		found++
	}
	if found == 0 {
		return c, fmt.Errorf("collateral %s: none of %s found", dir, strings.Join(CollateralFiles, ", "))
	}
	return c, nil
}

// Save writes the collateral's non-empty fields into dir, one file each.
func (c Collateral) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, src := range c.files() {
		if len(*src) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), *src, 0o644); err != nil {
			return fmt.Errorf("save collateral %s: %w", name, err)
		}
	}
	return nil
}

// Merge returns c with every non-empty field of over put in its place.
func (c Collateral) Merge(over Collateral) Collateral {
	dst := c.files()
	for name, src := range over.files() {
		if len(*src) > 0 {
			*dst[name] = *src
		}
	}
	return c
}

// Empty reports whether c holds nothing.
func (c Collateral) Empty() bool {
	for _, f := range c.files() {
		if len(*f) > 0 {
			return false
		}
	}
	return true
}

// hasTDX reports whether c holds the TDX collateral verification needs.
func (c Collateral) hasTDX() bool {
	return len(c.TDXTcbInfo) > 0 && len(c.TDXQeIdentity) > 0 && len(c.TDXPckCrl) > 0 && len(c.TDXRootCrl) > 0
}

// tdxGetter answers go-tdx-guest's PCS requests from the collateral, offline.
type tdxGetter struct{ c Collateral }

func chainHeader(pem []byte) []string { return []string{url.QueryEscape(string(pem))} }

// Get serves the PCS URLs go-tdx-guest asks for (pcs.TcbInfoURL, QeIdentityURL,
// PckCrlURL, and the root CA CRL's distribution point); any other is an error.
func (g tdxGetter) Get(u string) (map[string][]string, []byte, error) {
	switch {
	case strings.Contains(u, "/tcb?fmspc="):
		return map[string][]string{"Tcb-Info-Issuer-Chain": chainHeader(g.c.TDXTcbInfoChain)}, g.c.TDXTcbInfo, nil
	case strings.Contains(u, "/qe/identity"):
		return map[string][]string{"Sgx-Enclave-Identity-Issuer-Chain": chainHeader(g.c.TDXQeIdentityChain)}, g.c.TDXQeIdentity, nil
	case strings.Contains(u, "/pckcrl"):
		return map[string][]string{"Sgx-Pck-Crl-Issuer-Chain": chainHeader(g.c.TDXPckCrlChain)}, g.c.TDXPckCrl, nil
	case strings.HasSuffix(strings.ToLower(u), ".der") || strings.Contains(u, "crl"):
		return nil, g.c.TDXRootCrl, nil
	}
	return nil, nil, fmt.Errorf("offline collateral has nothing for %s", u)
}

// sevGetter answers go-sev-guest's CRL request from the collateral, offline.
type sevGetter struct{ c Collateral }

func (g sevGetter) Get(u string) ([]byte, error) {
	if strings.HasSuffix(u, "/crl") && len(g.c.SEVCRL) > 0 {
		return g.c.SEVCRL, nil
	}
	return nil, fmt.Errorf("offline collateral has nothing for %s (sev_crl.der missing?)", u)
}
