package market

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/registry"
)

// ModuleName is the market's name in params and state.
const ModuleName = "market"

// Account is the module account holding bid deposits.
var Account = types.ModuleAddress("market")

// Params are the market's on-chain parameters. Periods are in blocks: heights are what
// every validator agrees on.
type Params struct {
	// Denom is the denomination of prices, deposits and bid deposits.
	Denom string `json:"denom"`
	// BidWindowBlocks is how many blocks an order takes bids: an order placed at H takes
	// bids in H+1..H+window and its winner is picked at the end of H+window.
	BidWindowBlocks int64 `json:"bid_window_blocks,string"`
	// BidDeposit is what a provider locks per bid, refunded when the bid is released;
	// it makes spamming bids cost something.
	BidDeposit uint64 `json:"bid_deposit,string"`
	// OrderTTLBlocks is how long an order that got no bid by its window's close stays
	// open before it closes with reason no_bids.
	OrderTTLBlocks int64 `json:"order_ttl_blocks,string"`
	// ManualPickBlocks is how long the tenant of a manual order has after the window
	// closes to pick a bid with MsgCreateLease.
	ManualPickBlocks int64 `json:"manual_pick_blocks,string"`
	// MinDepositBlocks is the least number of blocks at max price an order's deposit
	// must cover.
	MinDepositBlocks uint64 `json:"min_deposit_blocks,string"`
	// HeartbeatIntervalBlocks is how often a provider should send MsgHeartbeat for each
	// of its leases (advice to the daemon; the chain enforces the timeout).
	HeartbeatIntervalBlocks int64 `json:"heartbeat_interval_blocks,string"`
	// HeartbeatTimeoutBlocks: a lease whose last heartbeat (or creation) is more than
	// this many blocks old is closed with reason provider_unresponsive.
	HeartbeatTimeoutBlocks int64 `json:"heartbeat_timeout_blocks,string"`
	// StartTimeoutBlocks: a lease whose provider has not reported its workload
	// started (MsgStartLease) this many blocks after the lease was made closes with
	// reason start_timeout, its escrow refunded. It bills nothing before it starts.
	StartTimeoutBlocks int64 `json:"start_timeout_blocks,string"`
	// BookRetryBlocks: an order-book order whose unfilled rest waits is matched
	// against the book again every this many blocks (and whenever an ask of its
	// class is posted), until order_ttl_blocks after it was placed.
	BookRetryBlocks int64 `json:"book_retry_blocks,string"`
	// FeeBps is the protocol fee per pricing mode, in basis points of each lease
	// payment; a mode not named pays escrow's protocol_fee_bps.
	FeeBps map[string]uint32 `json:"fee_bps,omitempty"`
	// SealedCommitBlocks is how many blocks a sealed order takes commitments: an
	// order placed at H takes them in H+1..H+commit.
	SealedCommitBlocks int64 `json:"sealed_commit_blocks,string"`
	// SealedRevealBlocks is how many blocks after the commit window bids are
	// revealed; the winner is picked at the end of the last, and every commitment
	// not revealed by then forfeits its deposit to the community pool.
	SealedRevealBlocks int64 `json:"sealed_reveal_blocks,string"`
	// RTTProbeTTLBlocks is how long a provider's RTT probe counts for session
	// placement.
	RTTProbeTTLBlocks int64 `json:"rtt_probe_ttl_blocks,string"`
	// PerfBlocksPerHour turns a performance price per TFLOP-hour into one per block:
	// the chain's blocks per hour (3600 at one-second blocks).
	PerfBlocksPerHour int64 `json:"perf_blocks_per_hour,string"`
	// StakeEpochBlocks is the stake pool's epoch: its rewards are paid at the last
	// height of each, and uptime is counted per epoch.
	StakeEpochBlocks int64 `json:"stake_epoch_blocks,string"`
	// StakePoolPerEpoch is what each epoch's reward pool takes from the community
	// pool (at most what it holds), split by stake x uptime.
	StakePoolPerEpoch uint64 `json:"stake_pool_per_epoch,string"`
	// StakeMinUptimePermille is the uptime a provider not yet proven up is assigned
	// stake-pool work with (rewards count proven uptime only).
	StakeMinUptimePermille uint32 `json:"stake_min_uptime_permille"`
}

// DefaultParams: a 1-block bid window (providers see the order in the block after it is
// placed, so an order leases in 2 blocks), 1 KILN per bid, 100 blocks to wait for a
// first bid, 50 to pick manually, 10 blocks of deposit, heartbeats every 10 blocks with
// 3 missed allowed, and 600 blocks (10 minutes at 1 s blocks) for the tenant to send
// inputs, images and manifest and the provider to start them: a lease bills nothing
// until then, so a generous deadline costs the tenant nothing.
func DefaultParams() Params {
	return Params{Denom: types.NativeDenom, BidWindowBlocks: 1, BidDeposit: 1_000_000, OrderTTLBlocks: 100,
		ManualPickBlocks: 50, MinDepositBlocks: 10, HeartbeatIntervalBlocks: 10, HeartbeatTimeoutBlocks: 30,
		StartTimeoutBlocks: 600, BookRetryBlocks: 2, FeeBps: DefaultFeeBps(),
		SealedCommitBlocks: 1, SealedRevealBlocks: 2, RTTProbeTTLBlocks: 600, PerfBlocksPerHour: 3600,
		StakeEpochBlocks: 100, StakePoolPerEpoch: 1_000_000, StakeMinUptimePermille: 100}
}

// DefaultFeeBps are the protocol fees per pricing mode: at most 1% each, at the low
// end of the field (0.5-20%). The order book and the stake pool take less: their
// matching and rewards cost the chain less than an auction's bids.
func DefaultFeeBps() map[string]uint32 {
	return map[string]uint32{ModeAuction: 50, ModeMarket: 25, ModeSealed: 50, ModePerformance: 50, ModeStake: 25}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	switch {
	case types.ValidateDenom(p.Denom) != nil:
		return fmt.Errorf("denom: %v", types.ValidateDenom(p.Denom))
	case p.BidWindowBlocks < 1 || p.BidWindowBlocks > 10_000:
		return fmt.Errorf("bid_window_blocks: must be 1 to 10000 (got %d)", p.BidWindowBlocks)
	case p.OrderTTLBlocks < 0 || p.OrderTTLBlocks > 1_000_000:
		return fmt.Errorf("order_ttl_blocks: must be 0 to 1000000 (got %d)", p.OrderTTLBlocks)
	case p.ManualPickBlocks < 1 || p.ManualPickBlocks > 1_000_000:
		return fmt.Errorf("manual_pick_blocks: must be 1 to 1000000 (got %d)", p.ManualPickBlocks)
	case p.MinDepositBlocks < 1 || p.MinDepositBlocks > 1_000_000:
		return fmt.Errorf("min_deposit_blocks: must be 1 to 1000000 (got %d)", p.MinDepositBlocks)
	case p.HeartbeatIntervalBlocks < 1:
		return fmt.Errorf("heartbeat_interval_blocks: must be >= 1 (got %d)", p.HeartbeatIntervalBlocks)
	case p.HeartbeatTimeoutBlocks < p.HeartbeatIntervalBlocks:
		return fmt.Errorf("heartbeat_timeout_blocks: must be >= heartbeat_interval_blocks %d (got %d)", p.HeartbeatIntervalBlocks, p.HeartbeatTimeoutBlocks)
	case p.StartTimeoutBlocks < 1 || p.StartTimeoutBlocks > 1_000_000:
		return fmt.Errorf("start_timeout_blocks: must be 1 to 1000000 (got %d)", p.StartTimeoutBlocks)
	case p.BookRetryBlocks < 1 || p.BookRetryBlocks > 1_000_000:
		return fmt.Errorf("book_retry_blocks: must be 1 to 1000000 (got %d)", p.BookRetryBlocks)
	case p.SealedCommitBlocks < 1 || p.SealedCommitBlocks > 10_000:
		return fmt.Errorf("sealed_commit_blocks: must be 1 to 10000 (got %d)", p.SealedCommitBlocks)
	case p.SealedRevealBlocks < 1 || p.SealedRevealBlocks > 10_000:
		return fmt.Errorf("sealed_reveal_blocks: must be 1 to 10000 (got %d)", p.SealedRevealBlocks)
	case p.StakeEpochBlocks < 1 || p.StakeEpochBlocks > 10_000_000:
		return fmt.Errorf("stake_epoch_blocks: must be 1 to 10000000 (got %d)", p.StakeEpochBlocks)
	case p.StakeMinUptimePermille > 1000:
		return fmt.Errorf("stake_min_uptime_permille: must be <= 1000 (got %d)", p.StakeMinUptimePermille)
	case p.PerfBlocksPerHour < 1 || p.PerfBlocksPerHour > 3_600_000:
		return fmt.Errorf("perf_blocks_per_hour: must be 1 to 3600000 (got %d)", p.PerfBlocksPerHour)
	case p.RTTProbeTTLBlocks < 1 || p.RTTProbeTTLBlocks > 1_000_000:
		return fmt.Errorf("rtt_probe_ttl_blocks: must be 1 to 1000000 (got %d)", p.RTTProbeTTLBlocks)
	}
	for _, m := range slices.Sorted(maps.Keys(p.FeeBps)) {
		switch {
		case !ValidMode(m) || m == "":
			return fmt.Errorf("fee_bps.%s: not a pricing mode (%s)", m, strings.Join(ModeNames(), ", "))
		case p.FeeBps[m] > 10000:
			return fmt.Errorf("fee_bps.%s: must be <= 10000 (got %d)", m, p.FeeBps[m])
		}
	}
	return nil
}

// Order kinds.
const (
	KindBatch   = "batch"   // runs to completion; the provider reports it with MsgCompleteLease
	KindService = "service" // runs until closed
)

// Order, bid and lease states.
const (
	OrderOpen   = "open"   // taking bids
	OrderActive = "active" // has an active lease
	OrderClosed = "closed"

	LeaseActive = "active"
	LeaseClosed = "closed"
)

// Close reasons, recorded on leases and orders.
const (
	ReasonNoBids               = "no_bids"
	ReasonNotPicked            = "not_picked"
	ReasonTenantClosed         = "tenant_closed"
	ReasonProviderClosed       = "provider_closed"
	ReasonCompleted            = "completed"
	ReasonWorkloadFailed       = "workload_failed" // the workload failed to start, or exited with an error
	ReasonStartTimeout         = "start_timeout"   // no workload started within start_timeout_blocks
	ReasonEscrowExhausted      = "escrow_exhausted"
	ReasonProviderUnresponsive = "provider_unresponsive"
	ReasonProviderDeregistered = "provider_deregistered"
	ReasonUnfilled             = "unfilled"              // an order-book order that would not wait found no (more) asks
	ReasonSessionEnded         = "session_ended"         // a session lease ran its blocks
	ReasonReclaimed            = "reclaimed"             // the provider reclaimed a reclaimable lease at its deadline
	ReasonClusterUnplaced      = "cluster_unplaced"      // a cluster order found too few members by its expiry
	ReasonClusterMemberFailed  = "cluster_member_failed" // another member of the lease's cluster failed
)

// Bid release reasons (event attribute only).
const (
	bidWon        = "won"
	bidLost       = "lost"
	bidWithdrawn  = "withdrawn"
	bidNoCapacity = "no_capacity"
	bidOrderEnded = "order_closed"
)

// Group is a set of identical instances that must run on one provider. Resources are
// per instance; the group needs Count times them.
type Group struct {
	Name         string     `json:"name"`
	Count        uint32     `json:"count"`
	CPUMilli     uint64     `json:"cpu_milli"`
	MemoryBytes  uint64     `json:"memory_bytes,string"`
	StorageBytes uint64     `json:"storage_bytes,string"`
	GPU          GPURequest `json:"gpu"`
	// Region, if set, is the provider region required.
	Region string `json:"region,omitempty"`
	// Attributes the provider must advertise, sorted by key; value "*" means any value.
	Attributes []registry.Attribute `json:"attributes,omitempty"`
	// Containers is true when the group's services run container images: only a
	// provider whose runtime runs containers can take it.
	Containers bool `json:"containers,omitempty"`
}

// GPURequest asks for Units GPUs per instance, of any of Models (none: any GPU).
type GPURequest struct {
	Units  uint32      `json:"units"`
	Models []GPUFilter `json:"models,omitempty"`
}

// GPUFilter accepts a GPU; empty fields (and model "*") accept anything.
type GPUFilter struct {
	Model       string `json:"model"`
	MemoryBytes uint64 `json:"memory_bytes,string,omitempty"`
	Interface   string `json:"interface,omitempty"`
}

// GPUSpec names one kind of GPU in a provider's inventory.
type GPUSpec struct {
	Model       string `json:"model"`
	MemoryBytes uint64 `json:"memory_bytes,string"`
	Interface   string `json:"interface"`
}

// GPUCount is a number of GPUs of one spec.
type GPUCount struct {
	GPUSpec
	Count uint64 `json:"count"`
}

// Order is a tenant's request for resources.
type Order struct {
	ID           uint64        `json:"id,string"`
	Owner        types.Address `json:"owner"`
	Kind         string        `json:"kind"`
	Groups       []Group       `json:"groups"`
	MaxPrice     uint64        `json:"max_price,string"` // per block for the whole order, in Denom
	Denom        string        `json:"denom"`
	Manual       bool          `json:"manual"`
	AutoRedeploy bool          `json:"auto_redeploy"`
	// Mode is the order's pricing mode (ModeAuction, ...), fixed when it is placed.
	Mode string `json:"mode"`
	// Fill is how an order-book order fills (FillAll, ...); empty for other modes.
	Fill string `json:"fill,omitempty"`
	// Session, for a session order (pricing: sealed): how long it runs and how close
	// its provider must be to the tenant's clients.
	Session *Session `json:"session,omitempty"`
	// RevealCloseHeight is the last height of a sealed order's reveal window (its
	// commit window is BidOpenHeight..BidCloseHeight).
	RevealCloseHeight int64 `json:"reveal_close_height,string,omitempty"`
	// Parent is the order this one was split off (a part of a partly filled
	// order-book order, funded from its deposit); 0 for an order a tenant placed.
	Parent uint64 `json:"parent,string,omitempty"`
	// TEE is the trusted execution environment the order requires (TEECPU,
	// TEECPUGPU), "" when none; AllowedMeasurements the launch measurements accepted.
	// Provider checks (RegisterProviderCheck; the tee module's) enforce them.
	TEE string `json:"tee,omitempty"`
	// ReclaimWindowSeconds, when not 0, makes the order's leases reclaimable with at
	// least this much notice (MsgReclaimLease).
	ReclaimWindowSeconds uint64   `json:"reclaim_window_seconds,string,omitempty"`
	AllowedMeasurements  []string `json:"allowed_measurements,omitempty"`
	// Cluster makes the order a GPU cluster of Cluster.Members members, each one
	// instance of the order's single group, placed together (cluster.go); nil for an
	// ordinary order.
	Cluster *Cluster `json:"cluster,omitempty"`
	// MemberOf, for a member's own order (split off a placed cluster order, funded
	// from its deposit), is the cluster's order ID, and Rank the member's rank.
	MemberOf uint64 `json:"member_of,string,omitempty"`
	Rank     uint32 `json:"rank,omitempty"`
	// Unplaced says why the cluster order's last placement found too few members.
	Unplaced string `json:"unplaced,omitempty"`
	State    string `json:"state"`
	// BidOpenHeight..BidCloseHeight is the current bid window (re-set when the order
	// re-opens); ExpireHeight is when it closes if still unmatched.
	BidOpenHeight  int64 `json:"bid_open_height,string"`
	BidCloseHeight int64 `json:"bid_close_height,string"`
	ExpireHeight   int64 `json:"expire_height,string"`
	// NextCheck is the height at whose end the order is looked at again (0: never).
	NextCheck int64 `json:"next_check,string"`
	// Excluded providers failed an earlier lease of this order and may not bid again.
	Excluded []types.Address `json:"excluded,omitempty"`
	// Attempts counts leases made; the current lease is attempt Attempts.
	Attempts      uint32 `json:"attempts"`
	CloseReason   string `json:"close_reason,omitempty"`
	ClosedHeight  int64  `json:"closed_height,string,omitempty"`
	CreatedHeight int64  `json:"created_height,string"`
	UpdatedHeight int64  `json:"updated_height,string"`
}

// Session is what makes an order a session (cloud gaming, telecom, Aethir's model):
// its lease runs Blocks billed blocks and then closes (session_ended), and only a
// provider whose measured round-trip time to the client location Location is at most
// MaxRTTMs milliseconds may bid (MsgRTTProbe).
type Session struct {
	Blocks   uint64 `json:"blocks,string"`
	Location string `json:"location,omitempty"`
	MaxRTTMs uint32 `json:"max_rtt_ms,omitempty"`
}

// Bid is a provider's offer on an order.
type Bid struct {
	OrderID  uint64        `json:"order_id,string"`
	Provider types.Address `json:"provider"`
	Price    uint64        `json:"price,string"` // per block, in the order's denom
	Deposit  types.Coin    `json:"deposit"`
	// GPUs is the concrete GPU each group gets (zero for groups without GPUs).
	GPUs []GPUSpec `json:"gpus"`
	// Usage is what the lease would reserve.
	Usage Usage `json:"usage"`
	// Members, on a cluster order, is how many of its members the bid offers to run
	// (Usage is for all of them, Price per member); 0 on other orders.
	Members uint32 `json:"members,omitempty"`
	// Sealed is the hex commitment of a sealed bid not yet revealed (Price is 0
	// until then); empty for a bid with its price in the open.
	Sealed        string `json:"sealed,omitempty"`
	Seq           uint64 `json:"seq,string"` // global bid order, for ties
	CreatedHeight int64  `json:"created_height,string"`
	UpdatedHeight int64  `json:"updated_height,string"`
}

// Lease is a won bid running. Its ID is its order's ID.
type Lease struct {
	ID       uint64        `json:"id,string"`
	Attempt  uint32        `json:"attempt"`
	Owner    types.Address `json:"owner"`
	Provider types.Address `json:"provider"`
	Kind     string        `json:"kind"`
	Price    uint64        `json:"price,string"`
	Denom    string        `json:"denom"`
	GPUs     []GPUSpec     `json:"gpus"`
	Usage    Usage         `json:"usage"`
	State    string        `json:"state"`
	// LastHeartbeat is the height of the provider's last MsgHeartbeat (creation height
	// before the first).
	LastHeartbeat int64 `json:"last_heartbeat,string"`
	// StartedHeight is the height of the provider's MsgStartLease: the workload runs.
	// 0 until then; the lease bills from the block after it.
	StartedHeight int64 `json:"started_height,string,omitempty"`
	// UnitPrice, for a performance-priced lease, is its price per benchmark
	// TFLOP-hour, and WorkMilliTFLOPS the scores of its GPUs added up (Price is per
	// block from the two, re-read at every settlement).
	UnitPrice uint64 `json:"unit_price,string,omitempty"`
	// Reclaim is set while the provider reclaims the lease (it stays active until
	// the deadline, then closes with reason reclaimed).
	Reclaim         *Reclaim `json:"reclaim,omitempty"`
	WorkMilliTFLOPS uint64   `json:"work_mtflops,string,omitempty"`
	OutputHash      string   `json:"output_hash,omitempty"` // hex, from MsgCompleteLease
	CloseReason     string   `json:"close_reason,omitempty"`
	ClosedHeight    int64    `json:"closed_height,string,omitempty"`
	CreatedHeight   int64    `json:"created_height,string"`
	UpdatedHeight   int64    `json:"updated_height,string"`
}
