package app

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/liveness"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// TestLedgerScenarios runs the ledger scenarios in testdata/ledger, as etcd's raft runs
// its interaction tests: each file is a script of commands, each followed by `----` and
// the output it must print; `#` lines say why. After every block the harness checks
// that money is conserved, that no provider's leases exceed its inventory and that no
// order has two active leases. `go test ./app -run TestLedgerScenarios -rewrite`
// regenerates the expected output after an intended change (read the diff!).
//
// Commands:
//
//	genesis [window=N] [ttl=N] [manual-pick=N] [heartbeat-timeout=N] [min-deposit-blocks=N] [bid-deposit=N] [fee-bps=N]
//	        [challenge-every=N] [challenge-deadline=N] [hardware-recheck=N]   (liveness: off unless given)
//	        [book-retry=N] [stake-epoch=N] [stake-pool=N] [start-timeout=N]
//	    a chain with accounts val (the validator), p1, p2, p3, tenant and tenant2
//	block
//	    one block with the transactions below it, one per line: ACCOUNT VERB key=value...
//	    (VERBs in scenarioTx); prints each result and the block's market events
//	blocks n=N
//	    N empty blocks; prints the events of those that had any
//	order id=N | lease id=N | escrow id=N | capacity provider=P | why-no-bids id=N | cluster id=N
//	asks class=C | prices | stake-rewards
//	balances ACCOUNT...   (a named account or a module account: escrow, market, community_pool, ...)
func TestLedgerScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/ledger", func(t *testing.T, path string) {
		s := &scenario{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

// scenarioAccounts are the scenario's named accounts, in harness order.
var scenarioAccounts = []string{"val", "p1", "p2", "p3", "tenant", "tenant2"}

type scenario struct {
	h      *harness
	byName map[string]*account
	names  map[string]string // bech32 address -> name, for readable output
	supply string            // at genesis: nothing mints or burns in these scenarios
	invs   map[types.Address]registry.Inventory
	sols   map[uint64]*matmul.Solution // challenge answers sent, for their reveals
}

func (s *scenario) run(t *testing.T, d *datadriven.TestData) string {
	if s.h == nil && d.Cmd != "genesis" {
		d.Fatalf(t, "the first command must be genesis")
	}
	switch d.Cmd {
	case "genesis":
		return s.genesis(t, d)
	case "block":
		var txs []scenarioTx
		for _, line := range strings.Split(d.Input, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				txs = append(txs, s.parseTx(t, d, line))
			}
		}
		return s.block(t, d, txs)
	case "blocks":
		var n int
		d.ScanArgs(t, "n", &n)
		var out strings.Builder
		for range n {
			if evs := s.block(t, d, nil); strings.Count(evs, "\n") > 1 {
				out.WriteString(evs)
			}
		}
		fmt.Fprintf(&out, "now at height %d\n", s.h.height)
		return out.String()
	case "order":
		o, ok := market.GetOrder(s.h.ctx(), s.idArg(t, d, "id"))
		if !ok {
			return "no such order\n"
		}
		line := fmt.Sprintf("order %d: %s %s, max %d/block, bids %d..%d, expires %d, attempts %d", o.ID, o.State, o.Kind, o.MaxPrice,
			o.BidOpenHeight, o.BidCloseHeight, o.ExpireHeight, o.Attempts)
		if o.CloseReason != "" {
			line += fmt.Sprintf(", closed at %d (%s)", o.ClosedHeight, o.CloseReason)
		}
		for _, x := range o.Excluded {
			line += ", excludes " + s.name(x)
		}
		if o.Unplaced != "" {
			line += ", unplaced: " + s.readable(o.Unplaced)
		}
		return line + "\n"
	case "lease":
		l, ok := market.GetLease(s.h.ctx(), s.idArg(t, d, "id"))
		if !ok {
			return "no such lease\n"
		}
		line := fmt.Sprintf("lease %d attempt %d: %s, %s from %s at %d/block, made at %d, last heartbeat %d", l.ID, l.Attempt, l.State,
			s.name(l.Owner), s.name(l.Provider), l.Price, l.CreatedHeight, l.LastHeartbeat)
		if l.StartedHeight != 0 {
			line += fmt.Sprintf(", started at %d", l.StartedHeight)
		}
		if l.CloseReason != "" {
			line += fmt.Sprintf(", closed at %d (%s)", l.ClosedHeight, l.CloseReason)
		}
		return line + "\n"
	case "escrow":
		a, ok := escrow.Get(s.h.ctx(), s.idArg(t, d, "id"))
		if !ok {
			return "no such escrow account\n"
		}
		return fmt.Sprintf("escrow %d: %s, balance %d, deposited %d, paid %d, fees %d, refunded %d, settled at %d\n",
			a.OrderID, a.State, a.Balance, a.Deposited, a.Paid, a.Fees, a.Refunded, a.SettledHeight)
	case "capacity":
		var p string
		d.ScanArgs(t, "provider", &p)
		r, err := market.Capacity(s.h.ctx(), s.account(t, d, p).addr)
		if err != nil {
			return s.readable(err.Error()) + "\n"
		}
		return fmt.Sprintf("%s: used %s, free %s, active leases %v\n", p, usage(r.Used), usage(r.Free), r.ActiveLeases)
	case "why-no-bids":
		r, err := market.Match(s.h.ctx(), s.idArg(t, d, "id"))
		if err != nil {
			return s.readable(err.Error()) + "\n"
		}
		var out strings.Builder
		for _, p := range r.Providers {
			fmt.Fprintf(&out, "%s: fits %v, bid %v", s.name(p.Provider), p.Fits, p.Bid)
			for _, f := range p.Failures {
				fmt.Fprintf(&out, "; %s: %s", f.Constraint, f.Detail)
			}
			out.WriteString("\n")
		}
		return out.String()
	case "cluster":
		c, ok := market.GetCluster(s.h.ctx(), s.idArg(t, d, "id"))
		if !ok {
			return "no such cluster\n"
		}
		var out strings.Builder
		fmt.Fprintf(&out, "cluster %d: %s, epoch %d, %s on member failure", c.ID, c.State, c.Epoch, c.Policy)
		if c.RunningHeight != 0 {
			fmt.Fprintf(&out, ", all running at %d", c.RunningHeight)
		}
		if c.CloseReason != "" {
			fmt.Fprintf(&out, ", closed at %d (%s)", c.ClosedHeight, c.CloseReason)
		}
		out.WriteString("\n")
		for _, m := range c.Members {
			fmt.Fprintf(&out, "  rank %d: lease %d on %s, %s", m.Rank, m.Lease, s.name(m.Provider), m.State)
			if m.Endpoint != "" {
				fmt.Fprintf(&out, ", endpoint %s", m.Endpoint)
			}
			out.WriteString("\n")
		}
		return out.String()
	case "asks":
		var class string
		d.ScanArgs(t, "class", &class)
		var out strings.Builder
		for _, a := range market.Asks(s.h.ctx(), class, 0) {
			fmt.Fprintf(&out, "%s: %d units at %d, seq %d, posted at %d\n", s.name(a.Provider), a.Units, a.Price, a.Seq, a.UpdatedHeight)
		}
		if out.Len() == 0 {
			return "no asks\n"
		}
		return out.String()
	case "prices":
		var out strings.Builder
		// NB: the day's range is by block time, which the node's queries read from
		// the last block.
		ctx := s.h.ctx()
		ctx.Time = blockTime(s.h.height)
		for _, c := range market.Prices(ctx) {
			fmt.Fprintf(&out, "%s: best ask %d (%d units, %d asks), last trade %d at %d, 24h %d..%d over %d trades\n", c.Class, c.BestAsk, c.BestAskUnits, c.Asks,
				c.LastTrade, c.LastTradeHeight, c.Low24h, c.High24h, c.Trades24h)
		}
		return out.String()
	case "stake-rewards":
		r, ok := market.LastEpochReward(s.h.ctx())
		if !ok {
			return "no epoch paid yet\n"
		}
		var out strings.Builder
		fmt.Fprintf(&out, "epoch %d at %d: pool %d, paid %d\n", r.Epoch, r.Height, r.Pool, r.Paid)
		for _, p := range r.Providers {
			fmt.Fprintf(&out, "  %s: stake %d, uptime %d‰, reward %d\n", s.name(p.Provider), p.Stake, p.UptimePermill, p.Reward)
		}
		return out.String()
	case "balances":
		var out strings.Builder
		for _, a := range d.CmdArgs {
			var addr types.Address
			if i := slices.IndexFunc(ledgerTable.accounts, func(m bank.ModuleAccount) bool { return m.Name == a.Key }); i >= 0 {
				addr = ledgerTable.accounts[i].Address
			} else {
				addr = s.account(t, d, a.Key).addr
			}
			bals := bank.Balances(s.h.ctx(), addr).String()
			if bals == "" {
				bals = "nothing"
			}
			fmt.Fprintf(&out, "%s: %s\n", a.Key, bals)
		}
		return out.String()
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func (s *scenario) genesis(t *testing.T, d *datadriven.TestData) string {
	edits := map[string]func(*GenesisState, uint64){
		"window":             func(g *GenesisState, v uint64) { g.Params.Market.BidWindowBlocks = int64(v) },
		"ttl":                func(g *GenesisState, v uint64) { g.Params.Market.OrderTTLBlocks = int64(v) },
		"manual-pick":        func(g *GenesisState, v uint64) { g.Params.Market.ManualPickBlocks = int64(v) },
		"heartbeat-timeout":  func(g *GenesisState, v uint64) { g.Params.Market.HeartbeatTimeoutBlocks = int64(v) },
		"min-deposit-blocks": func(g *GenesisState, v uint64) { g.Params.Market.MinDepositBlocks = v },
		"bid-deposit":        func(g *GenesisState, v uint64) { g.Params.Market.BidDeposit = v },
		"fee-bps":            func(g *GenesisState, v uint64) { g.Params.Escrow.ProtocolFeeBps = uint32(v) },
		"challenge-every":    func(g *GenesisState, v uint64) { g.Params.Liveness.LeaseChallengeBlocks = int64(v) },
		"challenge-deadline": func(g *GenesisState, v uint64) { g.Params.Liveness.DeadlineBlocks = int64(v) },
		"hardware-recheck": func(g *GenesisState, v uint64) {
			g.Params.Liveness.HardwareAtRegistration, g.Params.Liveness.HardwareRecheckBlocks = true, int64(v)
		},
		"book-retry":    func(g *GenesisState, v uint64) { g.Params.Market.BookRetryBlocks = int64(v) },
		"stake-epoch":   func(g *GenesisState, v uint64) { g.Params.Market.StakeEpochBlocks = int64(v) },
		"stake-pool":    func(g *GenesisState, v uint64) { g.Params.Market.StakePoolPerEpoch = v },
		"start-timeout": func(g *GenesisState, v uint64) { g.Params.Market.StartTimeoutBlocks = int64(v) },
	}
	var apply []func(*GenesisState)
	for _, a := range d.CmdArgs {
		e, ok := edits[a.Key]
		if !ok {
			d.Fatalf(t, "genesis: unknown parameter %q", a.Key)
		}
		v := s.uintVal(t, d, a.Key, a.SingleVal(t))
		apply = append(apply, func(g *GenesisState) { e(g, v) })
	}
	s.h = newHarnessWith(t, len(scenarioAccounts), func(g *GenesisState) {
		for _, f := range apply {
			f(g)
		}
		// NB: one heartbeat interval per timeout keeps every timeout a valid choice.
		g.Params.Market.HeartbeatIntervalBlocks = min(g.Params.Market.HeartbeatIntervalBlocks, g.Params.Market.HeartbeatTimeoutBlocks)
		// NB: challenges (off unless asked for) stay small: the harness solves them.
		g.Params.Liveness.MaxN, g.Params.Liveness.RevealBlocks = 128, 3
	})
	s.sols = map[uint64]*matmul.Solution{}
	s.byName, s.names, s.invs = map[string]*account{}, map[string]string{}, map[types.Address]registry.Inventory{}
	for i, n := range scenarioAccounts {
		s.byName[n] = s.h.accs[i]
		s.names[s.h.accs[i].addr.String()] = n
	}
	for _, m := range ledgerTable.accounts {
		s.names[m.Address.String()] = m.Name
	}
	s.supply = bank.Supply(s.h.ctx()).String()
	p := market.GetParams(s.h.ctx())
	return fmt.Sprintf("height %d: accounts %s hold %s each; bid window %d, order ttl %d, manual pick %d, heartbeat timeout %d, min deposit %d blocks, bid deposit %d\n",
		s.h.height, strings.Join(scenarioAccounts, " "), bank.Balances(s.h.ctx(), s.h.accs[1].addr), p.BidWindowBlocks, p.OrderTTLBlocks,
		p.ManualPickBlocks, p.HeartbeatTimeoutBlocks, p.MinDepositBlocks, p.BidDeposit)
}

// scenarioTx is one transaction line of a block: its signer, its text and its message.
type scenarioTx struct {
	from *account
	line string
	msg  types.Msg
}

func (s *scenario) parseTx(t *testing.T, d *datadriven.TestData, line string) scenarioTx {
	f := strings.Fields(line)
	if len(f) < 2 {
		d.Fatalf(t, "tx %q: want ACCOUNT VERB key=value...", line)
	}
	from := s.account(t, d, f[0])
	args := map[string]string{}
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		args[k] = v
	}
	used := map[string]bool{}
	arg := func(k, def string) string {
		used[k] = true
		if v, ok := args[k]; ok {
			return v
		}
		if def == "" {
			d.Fatalf(t, "tx %q: missing %s=", line, k)
		}
		return def
	}
	num := func(k, def string) uint64 { return s.uintVal(t, d, k, arg(k, def)) }
	flag := func(k string) bool {
		used[k] = true
		_, ok := args[k]
		return ok
	}
	var msg types.Msg
	switch f[1] {
	case "register":
		// NB: the app tests' inventory, so scenario providers change with it.
		inv := inv(arg("region", "eu-west"))
		inv.CPUCores, inv.MemoryBytes = num("cpu", "8"), num("mem-gi", "32")*gi
		if g := arg("gpus", "none"); g != "none" {
			n, model, ok := strings.Cut(g, "x")
			spec, known := scenarioGPUs[model]
			if !ok || !known {
				d.Fatalf(t, "tx %q: gpus=%s: want NxMODEL with MODEL one of rtx4090, a100, h100", line, g)
			}
			spec.Count = uint32(s.uintVal(t, d, "gpus", n))
			inv.GPUs = []registry.GPU{spec}
		}
		msg = &registry.MsgRegisterProvider{Owner: from.addr, Endpoint: "https://" + f[0] + ".example:8443", CertPEM: s.cert(t),
			Inventory: inv, Stake: types.NewCoin("ukiln", num("stake", "100000000"))}
		s.invs[from.addr] = inv
	case "deregister":
		msg = &registry.MsgDeregisterProvider{Owner: from.addr}
	case "order":
		g := gpuGroup("main", uint32(num("count", "1")), uint32(num("gpus", "0")))
		if m := arg("model", "any"); m != "any" {
			g.GPU.Models = []market.GPUFilter{{Model: m}}
		}
		g.CPUMilli = num("cpu-milli", "1000")
		g.Region = strings.TrimPrefix(arg("region", "-"), "-")
		o := &market.MsgCreateOrder{Owner: from.addr, Kind: arg("kind", market.KindBatch), Groups: []market.Group{g},
			MaxPrice: num("max-price", ""), Deposit: types.NewCoin("ukiln", num("deposit", "")), Manual: flag("manual"), AutoRedeploy: flag("auto-redeploy"),
			Mode: strings.TrimPrefix(arg("mode", "-"), "-"), Fill: strings.TrimPrefix(arg("fill", "-"), "-"), ReclaimWindowSeconds: num("reclaim", "0")}
		if n := num("members", "1"); n > 1 {
			o.Cluster = &market.Cluster{Members: uint32(n), GPUsPerMember: g.GPU.Units, SameRegion: flag("same-region"), OnMemberFailure: arg("on-failure", market.FailRefund)}
		}
		if b := num("session-blocks", "0"); b > 0 {
			o.Session = &market.Session{Blocks: b, Location: strings.TrimPrefix(arg("location", "-"), "-"), MaxRTTMs: uint32(num("max-rtt-ms", "0"))}
		}
		msg = o
	case "ask":
		msg = &market.MsgAsk{Provider: from.addr, Class: arg("class", ""), Price: num("price", ""), Units: num("units", "")}
	case "cancel-ask":
		msg = &market.MsgCancelAsk{Provider: from.addr, Class: arg("class", "")}
	case "commit-bid":
		// The hash of price and the salt named salt= (default: the signer's), for the
		// provider named for= (default: the signer): a provider that copies another's
		// commitment commits a hash made for that other provider.
		id, price := num("order", ""), num("price", "")
		for_ := s.account(t, d, arg("for", f[0])).addr
		msg = &market.MsgCommitBid{Provider: from.addr, OrderID: id, Hash: market.SealedHash(id, for_, price, scenarioSalt(arg("salt", f[0])))}
	case "reveal-bid":
		msg = &market.MsgRevealBid{Provider: from.addr, OrderID: num("order", ""), Price: num("price", ""), Salt: scenarioSalt(arg("salt", f[0]))}
	case "probe":
		msg = &market.MsgRTTProbe{Provider: from.addr, Location: arg("location", ""), RTTMicros: num("rtt-us", "")}
	case "reclaim":
		msg = &market.MsgReclaimLease{Provider: from.addr, LeaseID: num("lease", ""), Reason: arg("reason", "maintenance"), NoticeSeconds: num("notice", "")}
	case "close-order":
		msg = &market.MsgCloseOrder{Owner: from.addr, OrderID: num("order", "")}
	case "bid":
		msg = &market.MsgCreateBid{Provider: from.addr, OrderID: num("order", ""), Price: num("price", ""), Members: uint32(num("members", "0"))}
	case "member-ready":
		msg = &market.MsgMemberReady{Provider: from.addr, Cluster: num("cluster", ""), Rank: uint32(num("rank", "")), Epoch: uint32(num("epoch", "0")),
			PublicKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(num("rank", ""))}, 32)), Endpoint: "127.0.0.1:" + arg("port", "")}
	case "member-running":
		msg = &market.MsgMemberRunning{Provider: from.addr, Cluster: num("cluster", ""), Rank: uint32(num("rank", "")), Epoch: uint32(num("epoch", "0"))}
	case "withdraw-bid":
		msg = &market.MsgCloseBid{Provider: from.addr, OrderID: num("order", "")}
	case "pick":
		msg = &market.MsgCreateLease{Owner: from.addr, OrderID: num("order", ""), Provider: s.account(t, d, arg("provider", "")).addr}
	case "close-lease":
		msg = &market.MsgCloseLease{Sender: from.addr, LeaseID: num("lease", "")}
	case "heartbeat":
		msg = &market.MsgHeartbeat{Provider: from.addr, LeaseID: num("lease", "")}
	case "start":
		msg = &market.MsgStartLease{Provider: from.addr, LeaseID: num("lease", "")}
	case "complete":
		msg = &market.MsgCompleteLease{Provider: from.addr, LeaseID: num("lease", ""), OutputHash: []byte{0xab, 0xcd}, Failed: flag("failed")}
	case "answer":
		// The challenge's product, or with `wrong` zeros: a provider that computed nothing.
		id := num("challenge", "")
		c, ok := liveness.GetChallenge(s.h.ctx(), id)
		if !ok {
			d.Fatalf(t, "tx %q: no challenge %d", line, id)
		}
		sol := matmul.Commit(int(c.N), c.Seed, make([]float64, int(c.N)*int(c.N)))
		if !flag("wrong") {
			sol, _ = matmul.Solve(int(c.N), c.Seed)
		}
		s.sols[id] = sol
		msg = &liveness.MsgAnswer{Provider: from.addr, Challenge: id, Root: sol.Root(), Millis: num("millis", "10")}
	case "reveal":
		id := num("challenge", "")
		c, _ := liveness.GetChallenge(s.h.ctx(), id)
		sol := s.sols[id]
		if sol == nil {
			d.Fatalf(t, "tx %q: challenge %d was not answered in this scenario", line, id)
		}
		m := &liveness.MsgReveal{Provider: from.addr, Challenge: id}
		for _, k := range c.Chunks {
			m.Chunks = append(m.Chunks, liveness.RevealedChunk{Index: k, Entries: sol.Chunk(int(k)), Proof: sol.Proof(int(k))})
		}
		msg = m
	case "deposit":
		msg = &escrow.MsgDeposit{Owner: from.addr, OrderID: num("order", ""), Amount: types.NewCoin("ukiln", num("amount", ""))}
	default:
		d.Fatalf(t, "tx %q: unknown verb %q", line, f[1])
	}
	for k := range args {
		if !used[k] {
			d.Fatalf(t, "tx %q: unknown argument %q for %s", line, k, f[1])
		}
	}
	return scenarioTx{from: from, line: line, msg: msg}
}

// scenarioSalt is the sealed-bid salt a scenario names (by an account's name).
func scenarioSalt(name string) []byte {
	h := sha256.Sum256([]byte("scenario salt " + name))
	return h[:]
}

var scenarioGPUs = map[string]registry.GPU{"rtx4090": rtx4090(0), "a100": a100(0), "h100": {Model: "h100", MemoryBytes: 80 * gi, Interface: "sxm"}}

// block runs txs in one block, checks the invariants, and returns what happened.
func (s *scenario) block(t *testing.T, d *datadriven.TestData, txs []scenarioTx) string {
	var raws [][]byte
	seqs := map[*account]uint64{}
	for _, tx := range txs {
		if _, ok := seqs[tx.from]; !ok {
			acc, _ := auth.Get(s.h.ctx(), tx.from.addr)
			seqs[tx.from] = acc.Sequence
		}
		raws = append(raws, s.h.sign(tx.from, seqs[tx.from], stepFee(tx.msg), tx.msg))
		seqs[tx.from]++
	}
	res := s.h.block(raws...)
	var out strings.Builder
	fmt.Fprintf(&out, "height %d\n", s.h.height)
	evs := slices.Clone(res.Events)
	for i, r := range res.TxResults {
		if r.Code == 0 {
			fmt.Fprintf(&out, "tx %s: ok\n", txs[i].line)
		} else {
			fmt.Fprintf(&out, "tx %s: code %d: %s\n", txs[i].line, r.Code, s.readable(r.Log))
		}
		evs = append(evs, r.Events...)
	}
	// NB: tx events first, then the block's end (settlement, window closes).
	evs = append(evs[len(res.Events):], evs[:len(res.Events)]...)
	for _, e := range evs {
		if line, ok := s.event(e); ok {
			out.WriteString(line + "\n")
		}
	}
	s.check(t, d)
	return out.String()
}

// scenarioEvents are the events scenarios print, with the attributes shown.
var scenarioEvents = map[string][]string{
	"order_created":       {"order", "kind", "max_price", "deposit", "bid_close_height"},
	"order_reopened":      {"order", "excluded", "bid_close_height"},
	"order_closed":        {"order", "reason", "refund"},
	"bid_created":         {"order", "provider", "price"},
	"bid_closed":          {"order", "provider", "reason", "forfeit"},
	"bid_revealed":        {"order", "provider", "price"},
	"ask_created":         {"provider", "class", "price", "units"},
	"ask_amended":         {"provider", "class", "price", "units"},
	"ask_closed":          {"provider", "class", "reason"},
	"order_split":         {"order", "part", "count", "provider"},
	"lease_work_priced":   {"lease", "unit_price", "work_mtflops", "price"},
	"lease_reclaiming":    {"lease", "provider", "reason", "deadline"},
	"rtt_probe":           {"provider", "location", "rtt_us"},
	"stake_rewards":       {"epoch", "pool", "paid", "providers"},
	"lease_created":       {"lease", "attempt", "provider", "price"},
	"lease_started":       {"lease", "attempt", "provider"},
	"lease_closed":        {"lease", "attempt", "provider", "reason"},
	"escrow_deposit":      {"order", "amount", "balance"},
	"escrow_closed":       {"order", "paid", "fees", "refund"},
	"register_provider":   {"owner"},
	"deregister_provider": {"owner"},
	"liveness_challenge":  {"id", "kind", "provider", "lease", "model", "n", "deadline"},
	"liveness_answer":     {"id", "reveal_deadline"},
	"liveness_passed":     {"id", "kind", "flagged"},
	"liveness_failed":     {"id", "kind", "provider", "lease", "reason", "slashed"},
	"escrow_split":        {"order", "to", "amount"},
	"cluster_unplaced":    {"order", "why"},
	"cluster_placed":      {"order", "members", "providers", "price"},
	"cluster_ready":       {"cluster", "epoch"},
	"cluster_running":     {"cluster", "epoch"},
	"cluster_member_lost": {"cluster", "rank", "provider", "reason", "epoch"},
	"cluster_failed":      {"cluster", "rank", "reason"},
}

func (s *scenario) event(e abcitypes.Event) (string, bool) {
	keys, ok := scenarioEvents[e.Type]
	if !ok {
		return "", false
	}
	attrs := map[string]string{}
	for _, a := range e.Attributes {
		attrs[a.Key] = a.Value
	}
	parts := []string{e.Type}
	for _, k := range keys {
		if v, ok := attrs[k]; ok {
			parts = append(parts, k+"="+s.readable(v))
		}
	}
	return "  " + strings.Join(parts, " "), true
}

// check runs the scenario invariants after a block: money conserved, no provider's
// active leases beyond its inventory, and at most one active lease per order, on an
// order that says it is active.
func (s *scenario) check(t *testing.T, d *datadriven.TestData) {
	ctx := s.h.ctx()
	if a := Accounting(ctx); !a.Conserved {
		d.Fatalf(t, "height %d: money not conserved: %v", s.h.height, a.Problems)
	}
	if got := bank.Supply(ctx).String(); got != s.supply {
		d.Fatalf(t, "height %d: supply %s, was %s at genesis", s.h.height, got, s.supply)
	}
	used := map[types.Address]market.Usage{}
	activeOf := map[uint64]int{}
	for _, l := range market.Leases(ctx, market.LeaseFilter{}) {
		if l.State != market.LeaseActive {
			continue
		}
		activeOf[l.ID]++
		used[l.Provider] = used[l.Provider].Add(l.Usage)
		if o, _ := market.GetOrder(ctx, l.ID); o.State != market.OrderActive || o.Attempts != l.Attempt {
			d.Fatalf(t, "height %d: active lease %d attempt %d on order in state %s, attempt %d", s.h.height, l.ID, l.Attempt, o.State, o.Attempts)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(activeOf)) {
		if n := activeOf[id]; n > 1 {
			d.Fatalf(t, "height %d: order %d has %d active leases", s.h.height, id, n)
		}
	}
	for _, p := range slices.SortedFunc(maps.Keys(used), types.Address.Compare) {
		if err := used[p].FitsIn(market.Total(s.invs[p])); err != nil {
			d.Fatalf(t, "height %d: %s leased beyond its inventory: %v", s.h.height, s.name(p), err)
		}
	}
	if err := CheckInvariants(ctx); err != nil {
		d.Fatalf(t, "height %d: %v", s.h.height, err)
	}
}

func (s *scenario) account(t *testing.T, d *datadriven.TestData, name string) *account {
	a, ok := s.byName[name]
	if !ok {
		d.Fatalf(t, "unknown account %q (have %v)", name, scenarioAccounts)
	}
	return a
}

func (s *scenario) name(a types.Address) string {
	if n, ok := s.names[a.String()]; ok {
		return n
	}
	return a.String()
}

// readable replaces every known address in v with its name.
func (s *scenario) readable(v string) string {
	for addr, n := range s.names {
		v = strings.ReplaceAll(v, addr, n)
	}
	return v
}

func (s *scenario) idArg(t *testing.T, d *datadriven.TestData, key string) uint64 {
	var v string
	d.ScanArgs(t, key, &v)
	return s.uintVal(t, d, key, v)
}

func (s *scenario) uintVal(t *testing.T, d *datadriven.TestData, key, v string) uint64 {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		d.Fatalf(t, "%s=%q: want a non-negative integer", key, v)
	}
	return n
}

// cert is the fixed certificate every scenario provider publishes.
func (s *scenario) cert(t *testing.T) []byte {
	if providerCert == nil {
		providerCert = mustCertPEM(t, blockTime(0), blockTime(1<<31))
	}
	return providerCert
}

func usage(u market.Usage) string {
	var gpus []string
	for _, g := range u.GPUs {
		gpus = append(gpus, fmt.Sprintf("%dx%s", g.Count, g.Model))
	}
	if len(gpus) == 0 {
		gpus = []string{"no gpu"}
	}
	return fmt.Sprintf("%s, %d mcpu, %dGi", strings.Join(gpus, "+"), u.CPUMilli, u.MemoryBytes/gi)
}
