// Command portnoise binds and frees loopback TCP ports at random until killed, as
// the other programs of a busy shared machine do: half of the binds take port 0 (the
// kernel's pick, which is what a port "free a moment ago" was), half a random port
// of the range the kernel picks from. Each port is held for a random while.
// scripts/port-race.sh runs it beside `kiln demo` and `kiln bench network`.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	rate := flag.Int("rate", 500, "binds per second")
	maxHeld := flag.Int("held", 256, "ports held at once, at most")
	minHold := flag.Duration("min-hold", 50*time.Millisecond, "shortest hold")
	maxHold := flag.Duration("max-hold", 500*time.Millisecond, "longest hold")
	lo := flag.Int("lo", 32768, "lowest port of the random binds (Linux's default ip_local_port_range)")
	hi := flag.Int("hi", 60999, "highest port of the random binds")
	flag.Parse()
	if *rate < 1 || *maxHeld < 1 || *minHold <= 0 || *maxHold < *minHold || *lo < 1 || *hi > 65535 || *hi < *lo {
		fmt.Fprintln(os.Stderr, "portnoise: need rate, held >= 1, 0 < min-hold <= max-hold, 1 <= lo <= hi <= 65535")
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	type hold struct {
		ln    net.Listener
		until time.Time
	}
	var held []hold
	var binds, taken int
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			for _, h := range held {
				h.ln.Close()
			}
			fmt.Printf("portnoise: %d ports bound and freed, %d binds found the port taken\n", binds, taken)
			return
		case <-tick.C:
		}
		now := time.Now()
		kept := held[:0]
		for _, h := range held {
			if now.After(h.until) {
				h.ln.Close()
			} else {
				kept = append(kept, h)
			}
		}
		held = kept
		if len(held) >= *maxHeld {
			continue
		}
		port := 0
		if rand.IntN(2) == 0 {
			port = *lo + rand.IntN(*hi-*lo+1)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			taken++
			continue
		}
		binds++
		held = append(held, hold{ln, now.Add(*minHold + rand.N(*maxHold-*minHold+1))})
	}
}
