package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	xtee "github.com/kiln-network/kiln/x/tee"
)

func sealFor(cmd *cobra.Command, c *client.Client, p types.Address, allowed []string, r io.Reader, w io.Writer) (xtee.Attestation, error) {
	return tenant.Seal(cmd.Context(), c, p, lowerHex(allowed), r, w)
}

func lowerHex(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		b := []byte(s)
		for j, ch := range b {
			if ch >= 'A' && ch <= 'F' {
				b[j] = ch + 32
			}
		}
		out[i] = string(b)
	}
	return out
}
