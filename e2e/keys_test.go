package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// `kiln keys delete` asks on a terminal and deletes only on yes; without a terminal it
// refuses unless given -y; a refusal leaves the key in place and exits 1.
func TestKeysDeleteConfirms(t *testing.T) {
	home := t.TempDir()
	kb := []string{"--home", home, "--keyring-backend", "test"}
	for _, name := range []string{"a", "b", "c"} {
		kiln(t, append([]string{"keys", "add", name}, kb...)...)
	}
	has := func(name string) bool {
		return strings.Contains(kiln(t, append([]string{"keys", "list"}, kb...)...), name+" ")
	}

	// No terminal (standard input is /dev/null), no -y: refused, nothing asked or read.
	code, stdout, stderr := run(t, append([]string{"keys", "delete", "a"}, kb...)...)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "--yes") || strings.Count(stderr, "\n") != 1 || !has("a") {
		t.Fatalf("keys delete without a terminal or -y: exit %d, stdout %q, stderr %q, key kept %v; want exit 1, one line naming --yes, key kept", code, stdout, stderr, has("a"))
	}

	// On a terminal: "n" keeps the key (exit 1), "y" deletes it.
	for _, tt := range []struct {
		answer string
		code   int
		kept   bool
	}{{"n", 1, true}, {"", 1, true}, {"y", 0, false}} {
		out, code := onTerminal(t, tt.answer, append([]string{"keys", "delete", "a"}, kb...)...)
		if !strings.Contains(out, `Delete key "a" (kiln1`) || code != tt.code || has("a") != tt.kept {
			t.Fatalf("keys delete answered %q on a terminal: exit %d, key kept %v, terminal showed:\n%s\nwant exit %d, key kept %v", tt.answer, code, has("a"), out, tt.code, tt.kept)
		}
	}

	// -y deletes without asking; an unknown key is refused before any question.
	if out := kiln(t, append([]string{"keys", "delete", "b", "-y"}, kb...)...); !strings.Contains(out, `deleted key "b"`) || has("b") {
		t.Fatalf("keys delete -y: %q, key kept %v", out, has("b"))
	}
	if code, _, stderr := run(t, append([]string{"keys", "delete", "nope", "-y"}, kb...)...); code != 1 || !strings.Contains(stderr, `"nope"`) || !has("c") {
		t.Fatalf("keys delete of an unknown key: exit %d, %q", code, stderr)
	}
}

// onTerminal runs the binary with a pseudo-terminal as its standard input, output and
// error, answers the first question it asks (a line ending in "] ") with answer, and
// returns what the terminal showed and the exit status.
func onTerminal(t *testing.T, answer string, args ...string) (string, int) {
	t.Helper()
	ptm, pts := openPTY(t)
	defer ptm.Close()
	cmd := exec.Command(kilnBin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close() // the child has its own copies: reads of ptm end (EIO) when it exits
	var mu sync.Mutex
	var shown bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		b := make([]byte, 4096)
		for {
			n, err := ptm.Read(b)
			mu.Lock()
			shown.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	// 20 s: the binary starts and opens the keyring; it asks at once.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		asked := strings.Contains(shown.String(), "] ")
		mu.Unlock()
		if asked {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("kiln %v asked nothing on the terminal in 20 s; it showed %q", args, shown.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ptm.Write([]byte(answer + "\n"))
	err := cmd.Wait()
	<-readDone
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return shown.String(), code
}

// openPTY opens a pseudo-terminal pair (Linux /dev/ptmx).
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		ptm.Close()
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		ptm.Close()
		t.Skipf("pseudo-terminal number: %v", err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		t.Skipf("open pseudo-terminal %d: %v", n, err)
	}
	return ptm, pts
}
