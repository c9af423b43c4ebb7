package demo

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/x/market"
)

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
	}
	return nil, nil
}
