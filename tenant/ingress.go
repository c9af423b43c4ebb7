package tenant

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/api/apiclient"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/registry"
)

// providerRecord reads a provider's registry record: its endpoint and the TLS
// certificate tenants pin.
func providerRecord(ctx context.Context, c *client.Client, provider types.Address) (registry.Provider, error) {
	var prov registry.Provider
	if err := c.QueryJSON(ctx, client.PathProvider(provider), &prov); err != nil {
		return prov, fmt.Errorf("provider %s: %w", provider, err)
	}
	return prov, nil
}

// certPaths are where EnsureCert keeps owner's client certificate and key in dir.
func certPaths(dir string, owner types.Address) (certPath, keyPath string) {
	return filepath.Join(dir, owner.String()+".crt"), filepath.Join(dir, owner.String()+".key")
}

// ProviderCertPath is where the tenant keeps a provider's published TLS certificate,
// for tools such as curl to trust it alone (--cacert).
func ProviderCertPath(dir string, provider types.Address) string {
	return filepath.Join(dir, "provider-"+provider.String()+".crt")
}

// serviceAccess returns how to reach a running service lease: the ingress URL of its
// first global TCP port and a curl command line that presents the tenant's client
// certificate and trusts only the provider's published certificate, which it writes
// to ProviderCertPath. A service exposing no global TCP port has none; a problem
// writing the certificate is told through progress and leaves the curl line out.
func serviceAccess(ctx context.Context, c *client.Client, certDir string, owner, provider types.Address, pc *apiclient.Client, leaseID uint64, m api.Manifest, progress func(string)) (url, curl string) {
	global := false
	for _, s := range m.Services {
		for _, e := range s.Expose {
			global = global || (e.Global && (e.Proto == "" || strings.EqualFold(e.Proto, "tcp")))
		}
	}
	if !global {
		progress(fmt.Sprintf("service lease %d exposes no global TCP port: nothing to reach through the provider's ingress", leaseID))
		return "", ""
	}
	url = pc.IngressURL(leaseID, "/")
	progress(fmt.Sprintf("service lease %d is reachable at %s (mutual TLS: your client certificate, the provider's published one)", leaseID, url))
	prov, err := providerRecord(ctx, c, provider)
	if err == nil {
		err = os.WriteFile(ProviderCertPath(certDir, provider), []byte(prov.CertPEM), 0o644)
	}
	if err != nil {
		progress(fmt.Sprintf("writing the provider's certificate for curl: %v", err))
		return url, ""
	}
	cert, key := certPaths(certDir, owner)
	curl = fmt.Sprintf("curl --cert %s --key %s --cacert %s %s", shellQuote(cert), shellQuote(key), shellQuote(ProviderCertPath(certDir, provider)), shellQuote(url))
	progress("try it: " + curl)
	return url, curl
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)

// shellQuote quotes s for a POSIX shell, leaving plain words as they are.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
