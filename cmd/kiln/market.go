package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/cert"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

func parseID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usagef("id %q: want a positive integer", s)
	}
	return id, nil
}

// marketTxCmds returns the market, escrow and cert transaction commands.
func marketTxCmds() []*cobra.Command {
	mk := &cobra.Command{Use: "market", Short: "Market transactions: orders, bids, leases"}
	create := txCmd("create-order FROM_KEY SPEC_FILE", "Post an order from a YAML or JSON spec and escrow its deposit", 2,
		func(cmd *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
			spec, err := tenant.LoadOrderSpec(args[0])
			if err != nil {
				return nil, err
			}
			for _, f := range []struct {
				name string
				dst  *string
			}{{"max-price", &spec.MaxPrice}, {"deposit", &spec.Deposit}, {"kind", &spec.Kind}} {
				if v, _ := cmd.Flags().GetString(f.name); v != "" {
					*f.dst = v
				}
			}
			if cmd.Flags().Changed("manual") {
				spec.Manual, _ = cmd.Flags().GetBool("manual")
			}
			if cmd.Flags().Changed("auto-redeploy") {
				spec.AutoRedeploy, _ = cmd.Flags().GetBool("auto-redeploy")
			}
			m, err := spec.Msg(from, types.NativeDenom)
			if err != nil {
				return nil, err
			}
			return []types.Msg{m}, nil
		})
	create.Flags().String("max-price", "", "max price per block, e.g. 1000ukiln (overrides the spec)")
	create.Flags().String("deposit", "", "escrow deposit, e.g. 100000ukiln (overrides the spec)")
	create.Flags().String("kind", "", "batch or service (overrides the spec)")
	create.Flags().Bool("manual", false, "pick the winning bid yourself with create-lease")
	create.Flags().Bool("auto-redeploy", false, "re-open the order if the provider stops heartbeating")

	bid := txCmd("bid FROM_KEY ORDER_ID PRICE", "Bid PRICE per block (e.g. 800 or 800ukiln) on an order", 3,
		func(cmd *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
			id, err := parseID(args[0])
			if err != nil {
				return nil, err
			}
			price, err := client.ParsePrice(args[1], types.NativeDenom)
			if err != nil {
				return nil, usageErr(err)
			}
			m := &market.MsgCreateBid{Provider: from, OrderID: id, Price: price}
			if g, _ := cmd.Flags().GetString("gpu-models"); g != "" {
				m.GPUModels = strings.Split(g, ",")
			}
			return []types.Msg{m}, nil
		})
	bid.Flags().String("gpu-models", "", "GPU model to offer per group, comma-separated (empty entries: the chain picks)")

	idMsg := func(use, short string, build func(from types.Address, id uint64) types.Msg) *cobra.Command {
		return txCmd(use, short, 2, func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
			id, err := parseID(args[0])
			if err != nil {
				return nil, err
			}
			return []types.Msg{build(from, id)}, nil
		})
	}
	mk.AddCommand(create, bid,
		txCmd("create-lease FROM_KEY ORDER_ID PROVIDER_ADDR", "Pick a provider's bid on your manual order", 3,
			func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
				id, err := parseID(args[0])
				if err != nil {
					return nil, err
				}
				p, err := types.ParseAddress(args[1])
				if err != nil {
					return nil, usageErr(err)
				}
				return []types.Msg{&market.MsgCreateLease{Owner: from, OrderID: id, Provider: p}}, nil
			}),
		idMsg("close-order FROM_KEY ORDER_ID", "Close your order (and its lease) and get the unused escrow back",
			func(from types.Address, id uint64) types.Msg { return &market.MsgCloseOrder{Owner: from, OrderID: id} }),
		idMsg("close-bid FROM_KEY ORDER_ID", "Withdraw your bid on an order and get its deposit back",
			func(from types.Address, id uint64) types.Msg { return &market.MsgCloseBid{Provider: from, OrderID: id} }),
		idMsg("close-lease FROM_KEY LEASE_ID", "Close a lease you are the tenant or provider of",
			func(from types.Address, id uint64) types.Msg { return &market.MsgCloseLease{Sender: from, LeaseID: id} }),
		idMsg("heartbeat FROM_KEY LEASE_ID", "Tell the chain you are still running a lease (provider)",
			func(from types.Address, id uint64) types.Msg {
				return &market.MsgHeartbeat{Provider: from, LeaseID: id}
			}),
		txCmd("complete FROM_KEY LEASE_ID OUTPUT_HASH", "Report a batch lease done with the hex hash or Merkle root of its outputs (provider)", 3,
			func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
				id, err := parseID(args[0])
				if err != nil {
					return nil, err
				}
				h, err := hex.DecodeString(args[1])
				if err != nil {
					return nil, usagef("output hash %q: want hex", args[1])
				}
				return []types.Msg{&market.MsgCompleteLease{Provider: from, LeaseID: id, OutputHash: h}}, nil
			}))

	mk.AddCommand(pricingTxCmds()...)

	esc := &cobra.Command{Use: "escrow", Short: "Escrow transactions"}
	esc.AddCommand(txCmd("deposit FROM_KEY ORDER_ID AMOUNT", "Top up an order's escrow, e.g. kiln tx escrow deposit me 1 50000ukiln", 3,
		func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
			id, err := parseID(args[0])
			if err != nil {
				return nil, err
			}
			amt, err := parseAmount(args[1])
			return []types.Msg{&escrow.MsgDeposit{Owner: from, OrderID: id, Amount: amt}}, err
		}))

	crt := &cobra.Command{Use: "cert", Short: "Client certificate transactions"}
	crt.AddCommand(
		txCmd("publish FROM_KEY CERT_PEM_FILE", "Publish your mTLS client certificate (ECDSA P-256 or ed25519), replacing any previous one", 2,
			func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
				b, err := os.ReadFile(args[0])
				if err != nil {
					return nil, fmt.Errorf("read certificate: %w", err)
				}
				// NB: the chain checks all of this too; checking here says what is
				// wrong before a fee is paid for a refused transaction.
				c, _, err := cert.Parse(b, time.Now())
				if err != nil {
					return nil, fmt.Errorf("%s: %w", args[0], err)
				}
				if err := cert.CheckSubject(c, from); err != nil {
					return nil, fmt.Errorf("%s: %w", args[0], err)
				}
				return []types.Msg{&cert.MsgPublishCert{Owner: from, CertPEM: b}}, nil
			}),
		txCmd("revoke FROM_KEY", "Revoke your published client certificate", 1,
			func(_ *cobra.Command, from types.Address, _ []string) ([]types.Msg, error) {
				return []types.Msg{&cert.MsgRevokeCert{Owner: from}}, nil
			}))
	return []*cobra.Command{mk, esc, crt}
}

// addrFlag reads the address in string flag name of cmd; empty gives the zero
// address (no filter).
func addrFlag(cmd *cobra.Command, name string) (types.Address, error) {
	v, _ := cmd.Flags().GetString(name)
	if v == "" {
		return types.Address{}, nil
	}
	a, err := types.ParseAddress(v)
	if err != nil {
		return a, usagef("--%s: %w", name, err)
	}
	return a, nil
}

// withID is the query path of the id in the first argument.
func withID(path func(uint64) string) func([]string) (string, error) {
	return func(args []string) (string, error) {
		id, err := parseID(args[0])
		if err != nil {
			return "", err
		}
		return path(id), nil
	}
}

// marketQueryCmds returns the market, escrow and cert query commands.
func marketQueryCmds() []*cobra.Command {
	mk := &cobra.Command{Use: "market", Short: "Market queries"}
	var orders, bids, leases *cobra.Command
	orders = queryCmd("orders", "Orders (--state open|active|closed, --owner ADDR)", 0, func([]string) (string, error) {
		owner, err := addrFlag(orders, "owner")
		state, _ := orders.Flags().GetString("state")
		return client.PathOrders(state, owner), err
	}, renderOrders)
	orders.Flags().String("state", "", "only orders in this state")
	orders.Flags().String("owner", "", "only this tenant's orders")
	bids = queryCmd("bids", "Open bids (--order ID, --provider ADDR)", 0, func([]string) (string, error) {
		var id uint64
		if v, _ := bids.Flags().GetString("order"); v != "" {
			var err error
			if id, err = parseID(v); err != nil {
				return "", usagef("--order: %w", err)
			}
		}
		prov, err := addrFlag(bids, "provider")
		return client.PathBids(id, prov), err
	}, nil)
	bids.Flags().String("order", "", "only bids on this order")
	bids.Flags().String("provider", "", "only this provider's bids")
	leases = queryCmd("leases", "Leases (--state active|closed, --owner ADDR, --provider ADDR)", 0, func([]string) (string, error) {
		var f market.LeaseFilter
		var err error
		f.State, _ = leases.Flags().GetString("state")
		if f.Owner, err = addrFlag(leases, "owner"); err != nil {
			return "", err
		}
		f.Provider, err = addrFlag(leases, "provider")
		return client.PathLeases(f), err
	}, renderLeases)
	leases.Flags().String("state", "", "only leases in this state")
	leases.Flags().String("owner", "", "only this tenant's leases")
	leases.Flags().String("provider", "", "only this provider's leases")
	mk.AddCommand(orders, bids, leases,
		queryCmd("order ID", "One order", 1, withID(client.PathOrder), nil),
		queryCmd("lease ID", "The latest lease of an order", 1, withID(client.PathLease), renderLease),
		queryCmd("why-no-bids ID", "Per provider, the order's constraints it fails", 1, withID(client.PathWhyNoBids), renderMatch),
		queryCmd("capacity PROVIDER_ADDR", "A provider's inventory, leased and free resources", 1,
			withAddr(client.PathCapacity), nil))
	mk.AddCommand(pricingQueryCmds()...)
	esc := &cobra.Command{Use: "escrow", Short: "Escrow queries"}
	esc.AddCommand(queryCmd("account ORDER_ID", "An order's escrow account", 1, withID(client.PathEscrow), nil))
	crt := queryCmd("cert ADDR", "An account's published client certificate", 1, withAddr(client.PathCert), nil)
	return []*cobra.Command{mk, esc, crt}
}

func renderOrders(cmd *cobra.Command, raw []byte) error {
	var v struct{ Orders []market.Order }
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tKIND\tSTATE\tMAX_PRICE\tGROUPS\tCLOSE_REASON")
	for _, o := range v.Orders {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d%s\t%d\t%s\n", o.ID, o.Owner, o.Kind, o.State, o.MaxPrice, o.Denom, len(o.Groups), o.CloseReason)
	}
	return tw.Flush()
}

func renderLeases(cmd *cobra.Command, raw []byte) error {
	var v struct{ Leases []market.Lease }
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tATTEMPT\tPROVIDER\tSTATE\tPRICE\tCREATED\tCLOSE_REASON")
	for _, l := range v.Leases {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d%s\t%d\t%s\n", l.ID, l.Attempt, l.Provider, l.State, l.Price, l.Denom, l.CreatedHeight, l.CloseReason)
	}
	return tw.Flush()
}

func renderLease(cmd *cobra.Command, raw []byte) error {
	var l market.Lease
	if err := json.Unmarshal(raw, &l); err != nil {
		return err
	}
	writeLease(cmd.OutOrStdout(), l)
	return nil
}

// writeLease prints a lease as aligned "field value" lines; a CPU-only lease has no
// gpus line.
func writeLease(w io.Writer, l market.Lease) {
	fmt.Fprintf(w, "lease %d (attempt %d): %s\n", l.ID, l.Attempt, l.State)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("kind", "%s", l.Kind)
	row("tenant", "%s", l.Owner)
	row("provider", "%s", l.Provider)
	row("price", "%d%s per block", l.Price, l.Denom)
	var gpus []string
	for i, g := range l.GPUs {
		if g != (market.GPUSpec{}) {
			gpus = append(gpus, fmt.Sprintf("group %d: %s", i+1, gpuSpec(g)))
		}
	}
	if len(gpus) > 0 {
		row("gpus", "%s", strings.Join(gpus, "; "))
	}
	row("resources", "%s", usage(l.Usage))
	row("created", "height %d", l.CreatedHeight)
	if l.State == market.LeaseActive {
		row("heartbeat", "height %d", l.LastHeartbeat)
	}
	if l.CloseReason != "" {
		row("closed", "%s at height %d", l.CloseReason, l.ClosedHeight)
	}
	if l.OutputHash != "" {
		row("output", "%s", l.OutputHash)
	}
	tw.Flush()
}

func gpuSpec(g market.GPUSpec) string {
	s := g.Model
	if g.MemoryBytes > 0 {
		s += " " + registry.FormatBytes(g.MemoryBytes)
	}
	if g.Interface != "" {
		s += " " + g.Interface
	}
	return s
}

// usage prints resources as people write them: cores, binary sizes, counted GPUs.
func usage(u market.Usage) string {
	cpu := strconv.FormatFloat(float64(u.CPUMilli)/1000, 'f', -1, 64)
	s := fmt.Sprintf("cpu %s, memory %s, storage %s", cpu, registry.FormatBytes(u.MemoryBytes), registry.FormatBytes(u.StorageBytes))
	for _, g := range u.GPUs {
		s += fmt.Sprintf(", %d× %s", g.Count, gpuSpec(g.GPUSpec))
	}
	return s
}

func renderMatch(cmd *cobra.Command, raw []byte) error {
	var r market.MatchReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	writeMatch(cmd.OutOrStdout(), r)
	return nil
}

// writeMatch prints a why-no-bids report: an order that is not open takes no bids,
// so the report says first whether it is leased (to whom, since when) or closed (why).
func writeMatch(w io.Writer, r market.MatchReport) {
	l := r.Lease
	switch {
	case r.State == market.OrderOpen:
		fmt.Fprintf(w, "order %d is open, taking bids until height %d; %d providers at height %d:\n", r.OrderID, r.BidCloseHeight, len(r.Providers), r.Height)
	case l != nil && l.State == market.LeaseActive:
		fmt.Fprintf(w, "order %d is leased to %s since height %d (lease %d, attempt %d): a leased order takes no bids; %d providers at height %d:\n",
			r.OrderID, l.Provider, l.CreatedHeight, l.ID, l.Attempt, len(r.Providers), r.Height)
	default:
		fmt.Fprintf(w, "order %d is %s", r.OrderID, r.State)
		if r.CloseReason != "" {
			fmt.Fprintf(w, " (%s at height %d)", r.CloseReason, r.ClosedHeight)
		}
		fmt.Fprintf(w, ": it takes no bids; %d providers at height %d:\n", len(r.Providers), r.Height)
		if l != nil {
			fmt.Fprintf(w, "  its last lease (attempt %d) was with %s from height %d", l.Attempt, l.Provider, l.CreatedHeight)
			if l.CloseReason != "" {
				fmt.Fprintf(w, " until %s at height %d", l.CloseReason, l.ClosedHeight)
			}
			fmt.Fprintln(w)
		}
	}
	for _, p := range r.Providers {
		switch {
		case p.Leased:
			fmt.Fprintf(w, "  %s holds the lease\n", p.Provider)
		case p.Fits && p.Bid:
			fmt.Fprintf(w, "  %s fits and has bid\n", p.Provider)
		case p.Fits && r.State == market.OrderOpen:
			fmt.Fprintf(w, "  %s fits but has not bid (its price table or bidder may not want it)\n", p.Provider)
		case p.Fits:
			fmt.Fprintf(w, "  %s fits\n", p.Provider)
		default:
			for _, f := range p.Failures {
				fmt.Fprintf(w, "  %s: %s\n", p.Provider, f)
			}
		}
	}
	if len(r.Providers) == 0 {
		fmt.Fprintln(w, "  no provider is registered")
	}
}
