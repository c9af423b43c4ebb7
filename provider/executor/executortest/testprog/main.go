// Command testprog is the workload the executor conformance suite runs: one
// static binary with a mode per behaviour under test.
//
// Usage: testprog STEP [";" STEP]... runs the steps in order, each one of:
//
//	testprog echo WORDS...           print WORDS to stdout and stderr, exit 0
//	testprog write-out FILE CONTENT  write CONTENT to $KILN_OUT/FILE (default /out)
//	testprog write-file PATH CONTENT write CONTENT to PATH
//	testprog copy-in NAME            copy $KILN_IN/NAME (default /in) to $KILN_OUT/NAME
//	testprog link-out TARGET NAME    make $KILN_OUT/NAME a symbolic link to TARGET
//	testprog exit N                  exit with code N
//	testprog sleep D                 print "ready", sleep for duration D, exit 0
//	testprog sleep-ignore-term D     like sleep, but ignore SIGTERM
//	testprog hog-mem MiB             allocate and touch MiB mebibytes, then sleep
//	testprog serve-http PORT         serve "ok" over HTTP on 0.0.0.0:PORT
//	testprog connect HOST:PORT       dial HOST:PORT once; exit 0 if it connected, 3 if not
//	testprog read-file PATH          print the file at PATH; exit 0 if read, 3 if not
//	testprog caps                    print the CapEff line of /proc/self/status
//	testprog id                      print "uid=U gid=G", as `id` would
//	testprog ticker N                print N lines, one every 100ms
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: testprog MODE ARGS... [; MODE ARGS...]...")
	}
	var step []string
	for _, a := range append(os.Args[1:], ";") {
		if a != ";" {
			step = append(step, a)
			continue
		}
		if len(step) > 0 {
			run(step[0], step[1:])
		}
		step = nil
	}
}

func run(mode string, args []string) {
	switch mode {
	case "echo":
		msg := strings.Join(args, " ")
		fmt.Println(msg)
		fmt.Fprintln(os.Stderr, "stderr:", msg)
	case "write-out":
		need(args, 2)
		dir := os.Getenv("KILN_OUT")
		if dir == "" {
			dir = "/out"
		}
		if err := os.WriteFile(filepath.Join(dir, args[0]), []byte(args[1]), 0o644); err != nil {
			fail("write-out: %v", err)
		}
		fmt.Println("wrote", args[0])
	case "copy-in":
		need(args, 1)
		b, err := os.ReadFile(filepath.Join(envDir("KILN_IN", "/in"), args[0]))
		if err != nil {
			fail("copy-in: %v", err)
		}
		if err := os.WriteFile(filepath.Join(envDir("KILN_OUT", "/out"), args[0]), b, 0o644); err != nil {
			fail("copy-in: %v", err)
		}
		fmt.Println("copied", args[0])
	case "link-out":
		need(args, 2)
		if err := os.Symlink(args[0], filepath.Join(envDir("KILN_OUT", "/out"), args[1])); err != nil {
			fail("link-out: %v", err)
		}
		fmt.Println("linked", args[1])
	case "write-file":
		need(args, 2)
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			fmt.Println("write failed:", err)
			os.Exit(3)
		}
		fmt.Println("wrote", args[0])
	case "exit":
		need(args, 1)
		n, err := strconv.Atoi(args[0])
		if err != nil {
			fail("exit: %v", err)
		}
		fmt.Println("exiting with", n)
		os.Exit(n)
	case "sleep", "sleep-ignore-term":
		need(args, 1)
		d, err := time.ParseDuration(args[0])
		if err != nil {
			fail("sleep: %v", err)
		}
		if mode == "sleep-ignore-term" {
			signal.Ignore(syscall.SIGTERM)
		} else {
			// As PID 1 in a container a process gets no default signal
			// handlers, so exit on SIGTERM explicitly.
			c := make(chan os.Signal, 1)
			signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
			go func() {
				<-c
				fmt.Println("terminated")
				os.Exit(143)
			}()
		}
		fmt.Println("ready")
		time.Sleep(d)
		fmt.Println("slept")
	case "hog-mem":
		need(args, 1)
		mib, err := strconv.Atoi(args[0])
		if err != nil {
			fail("hog-mem: %v", err)
		}
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB")
		time.Sleep(time.Minute)
	case "serve-http":
		need(args, 1)
		ln, err := net.Listen("tcp", ":"+args[0])
		if err != nil {
			fail("serve-http: %v", err)
		}
		fmt.Println("listening on", ln.Addr())
		err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "ok")
		}))
		fail("serve-http: %v", err)
	case "connect":
		need(args, 1)
		c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
		if err != nil {
			fmt.Println("connect failed:", err)
			os.Exit(3)
		}
		c.Close()
		fmt.Println("connected")
	case "read-file":
		need(args, 1)
		b, err := os.ReadFile(args[0])
		if err != nil {
			fmt.Println("read failed:", err)
			os.Exit(3)
		}
		os.Stdout.Write(b)
	case "caps":
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fail("caps: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "CapEff:") || strings.HasPrefix(line, "NoNewPrivs:") {
				fmt.Println(line)
			}
		}
	case "id":
		fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	case "ticker":
		need(args, 1)
		n, err := strconv.Atoi(args[0])
		if err != nil {
			fail("ticker: %v", err)
		}
		for i := 0; i < n; i++ {
			fmt.Println("tick", i)
			time.Sleep(100 * time.Millisecond)
		}
	default:
		fail("unknown mode %q", mode)
	}
}

// envDir is the directory the environment variable names, else def.
func envDir(name, def string) string {
	if d := os.Getenv(name); d != "" {
		return d
	}
	return def
}

func need(args []string, n int) {
	if len(args) < n {
		fail("need %d arguments, got %d", n, len(args))
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "testprog: "+format+"\n", a...)
	os.Exit(1)
}
