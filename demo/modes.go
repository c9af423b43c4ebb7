package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/x/market"
)

// The sealed demo's sessions: their clients are "at" a loopback endpoint the demo
// serves, which every provider measures its round-trip time to.
const (
	demoClientLocation = "demo-client"
	demoMaxRTTMs       = 50
)

// clientEndpoint serves the demo's client location: a TCP listener on loopback that
// accepts and closes connections (providers time the connect).
func clientEndpoint() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("client location endpoint: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }, nil
}

// modeFigures returns what the demo reports of its pricing mode beyond the jobs: for
// the order book, its prices per class.
func modeFigures(ctx context.Context, c *client.Client, mode string) (map[string]any, error) {
	switch mode {
	case market.ModeMarket:
		raw, err := c.Query(ctx, "/market/prices")
		if err != nil {
			return nil, fmt.Errorf("order book prices: %w", err)
		}
		var v struct {
			Prices []market.ClassPrices `json:"prices"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("order book prices: %w", err)
		}
		return map[string]any{"prices": v.Prices}, nil
	case market.ModeSealed:
		return map[string]any{"session_blocks": tenant.DefaultDepositBlocks, "client_location": demoClientLocation, "max_rtt_ms": demoMaxRTTMs,
			"commit_blocks": 1, "reveal_blocks": 2}, nil
	}
	return nil, nil
}
