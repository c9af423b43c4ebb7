package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every failing command prints one line on standard error, "Error: " and what is
// wrong, nothing on standard output, and exits 2 for a wrong command line or 1 for
// an operation that was refused or failed.
func TestCLIErrorsExitStatus(t *testing.T) {
	empty := t.TempDir()
	home := t.TempDir()
	kiln(t, "keys", "add", "me", "--home", home, "--keyring-backend", "test")
	to := strings.TrimSpace(kiln(t, "keys", "show", "me", "-a", "--home", home, "--keyring-backend", "test"))
	down := "tcp://127.0.0.1:1" // nothing listens on port 1
	noSpec := filepath.Join(empty, "missing.yaml")
	tests := []struct {
		args []string
		code int
		want string // in the error line
	}{
		// usage: the command line is wrong
		{[]string{"bogus"}, 2, `unknown command "bogus" for "kiln"`},
		{[]string{"qery"}, 2, `did you mean "query"?`},
		{[]string{"tx", "bogus"}, 2, `unknown command "bogus" for "kiln tx"`},
		{[]string{"query", "market", "bogus"}, 2, `unknown command "bogus" for "kiln query market"`},
		{[]string{"bench", "bogus"}, 2, `unknown command "bogus" for "kiln bench"`},
		{[]string{"tx", "bank", "send"}, 2, "kiln tx bank send: accepts between 2 and 3 arg(s), received 0 (usage: kiln tx bank send FROM_KEY TO_ADDR AMOUNT"},
		{[]string{"tx", "cert", "publish"}, 2, "usage: kiln tx cert publish FROM_KEY CERT_PEM_FILE"},
		{[]string{"keys", "add"}, 2, "usage: kiln keys add NAME"},
		{[]string{"keys", "show", "a", "b"}, 2, "received 2"},
		{[]string{"fetch"}, 2, "usage: kiln fetch ID"},
		{[]string{"status", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"status", "-o", "xml"}, 2, `--output "xml": want text or json`},
		{[]string{"provider", "run"}, 2, `required flag(s) "key" not set`},
		{[]string{"query", "market", "lease", "abc"}, 2, `id "abc": want a positive integer`},
		{[]string{"query", "market", "why-no-bids", "0"}, 2, `id "0": want a positive integer`},
		{[]string{"query", "bank", "balances", "cosmos1xyz"}, 2, `address "cosmos1xyz"`},
		{[]string{"query", "market", "leases", "--owner", "nope"}, 2, "--owner: "},
		{[]string{"lease", "status", "0"}, 2, `lease id "0": want a positive integer`},
		{[]string{"lease", "list", "--node", down}, 2, "--from KEY (or --all) is required"},
		{[]string{"localnet", "start", "--dir", empty, "--node", "x"}, 2, `invalid argument "x"`},
		{[]string{"init", "--home", empty, "--block-time", "0s"}, 2, "--block-time 0s: must be > 0"},
		{[]string{"keys", "list", "--home", home, "--keyring-backend", "bogus"}, 2, `--keyring-backend "bogus": want file or test`},
		{[]string{"sdl", "show"}, 2, "show needs exactly one FILE"},
		{[]string{"work", "matmul", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"tx", "bank", "send", "me", "cosmos1xyz", "5ukiln", "--home", home, "--keyring-backend", "test", "--node", down}, 2, `address "cosmos1xyz"`},
		{[]string{"tx", "bank", "send", "me", to, "lots", "--home", home, "--keyring-backend", "test", "--node", down}, 2, "lots"},
		{[]string{"tx", "market", "bid", "me", "x", "5", "--home", home, "--keyring-backend", "test", "--node", down}, 2, `id "x"`},

		// refused or failed: the command line is right
		{[]string{"status", "--node", down}, 1, "connection refused"},
		{[]string{"query", "bank", "supply", "--node", down}, 1, "connection refused"},
		{[]string{"lease", "status", "1", "--node", down}, 1, "connection refused"},
		{[]string{"node", "--home", empty}, 1, "run `kiln init --home " + empty + "` first"},
		{[]string{"localnet", "start", "--dir", empty}, 1, "kiln localnet init --dir " + empty},
		{[]string{"localnet", "start", "--dir", empty, "--node", "1"}, 1, "kiln localnet init --dir " + empty},
		{[]string{"sdl", "show", noSpec}, 1, "no such file or directory"},
		{[]string{"deploy", noSpec}, 1, "no such file or directory"},
		{[]string{"gpu", "detect", "--from-file", noSpec}, 1, "no such file or directory"},
		{[]string{"keys", "show", "nope", "--home", home, "--keyring-backend", "test"}, 1, `"nope"`},
		{[]string{"keys", "delete", "nope", "-y", "--home", home, "--keyring-backend", "test"}, 1, `"nope"`},
		{[]string{"tx", "bank", "send", "nope", to, "5ukiln", "--home", home, "--keyring-backend", "test", "--node", down}, 1, `"nope"`},
		{[]string{"tx", "cert", "publish", "me", noSpec, "--home", home, "--keyring-backend", "test", "--node", down}, 1, "no such file or directory"},
		{[]string{"tx", "bank", "send", "me", to, "5ukiln", "--home", home, "--keyring-backend", "test", "--node", down}, 1, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.code || stdout != "" || !strings.HasPrefix(stderr, "Error: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("kiln %s: exit %d, stdout %q, stderr %q\nwant exit %d, no stdout, one line \"Error: ...\" containing %q",
					strings.Join(tt.args, " "), code, stdout, stderr, tt.code, tt.want)
			}
		})
	}
	// A command that only groups others, given nothing, prints its help and exits 0.
	if out := kiln(t, "tx"); !strings.Contains(out, "Available Commands") {
		t.Errorf("kiln tx printed %q, want its help", out)
	}
	_ = os.Remove(noSpec)
}
