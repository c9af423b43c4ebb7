package client

import (
	"net/url"
	"strconv"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// Query paths of the chain's ABCI Query, built from typed arguments: the one
// place they are spelled. The Client's typed getters and the CLI's `kiln
// query` commands (which print the raw JSON) both use them.
const (
	// PathSupply is the total supply of every denom.
	PathSupply = "/bank/supply"
	// PathAccounting is every balance summed against the supply
	// (bank.Accounting).
	PathAccounting = "/bank/accounting"
	// PathParams is every module's parameters, by module name.
	PathParams = "/params"
	// PathValidators lists the validators.
	PathValidators = "/staking/validators"
	// PathDelegations lists every delegation.
	PathDelegations = "/staking/delegations"
	// PathUnbondings lists the stake waiting out the unbonding period.
	PathUnbondings = "/staking/unbondings"
	// PathProviders lists the registered providers.
	PathProviders = "/registry/providers"
	// PathInferOpen lists the open inference requests.
	PathInferOpen = "/infer/open"
	// PathInferParams is the inference module's parameters.
	PathInferParams = "/infer/params"
	// PathTEENonce is the newest chain nonce and its height.
	PathTEENonce = "/tee/nonce"
	// PathTEEParams is the TEE module's parameters.
	PathTEEParams = "/tee/params"
	// PathPrices is the order book per class: best ask, last trade, 24 h range.
	PathPrices = "/market/prices"
	// PathEscrowAccounts lists every escrow account, by order ID.
	PathEscrowAccounts = "/escrow/accounts"
	// PathModules is the app's module table, in its order.
	PathModules = "/app/modules"
)

// PathBalances is an account's balances.
func PathBalances(a types.Address) string { return "/bank/balances/" + a.String() }

// PathAccount is an account's auth record (sequence).
func PathAccount(a types.Address) string { return "/auth/account/" + a.String() }

// PathProvider is one registered provider.
func PathProvider(a types.Address) string { return "/registry/provider/" + a.String() }

// PathCert is an account's published client certificate.
func PathCert(a types.Address) string { return "/cert/" + a.String() }

// PathOrder is one order.
func PathOrder(id uint64) string { return "/market/order/" + strconv.FormatUint(id, 10) }

// PathWhyNoBids is, per provider, the constraints of an order it fails.
func PathWhyNoBids(id uint64) string { return PathOrder(id) + "/match" }

// PathLease is the latest lease of an order.
func PathLease(id uint64) string { return "/market/lease/" + strconv.FormatUint(id, 10) }

// PathCluster is the placed cluster of cluster order id: members, providers,
// overlay keys and endpoints, states.
func PathCluster(id uint64) string { return "/market/cluster/" + strconv.FormatUint(id, 10) }

// PathCapacity is a provider's inventory, leased and free resources.
func PathCapacity(a types.Address) string { return "/market/provider/" + a.String() + "/capacity" }

// PathEscrow is an order's escrow account.
func PathEscrow(id uint64) string { return "/escrow/account/" + strconv.FormatUint(id, 10) }

// PathOrders lists the orders in state (empty: all) owned by owner (zero:
// anyone's).
func PathOrders(state string, owner types.Address) string {
	return withQuery("/market/orders", "state", state, "owner", addrOrEmpty(owner))
}

// PathBids lists the open bids on order id (0: all orders) by provider
// (zero: anyone).
func PathBids(id uint64, provider types.Address) string {
	oid := ""
	if id > 0 {
		oid = strconv.FormatUint(id, 10)
	}
	return withQuery("/market/bids", "order", oid, "provider", addrOrEmpty(provider))
}

// PathLeases lists the leases matching f (zero fields match all).
func PathLeases(f market.LeaseFilter) string {
	return withQuery("/market/leases", "state", f.State, "owner", addrOrEmpty(f.Owner), "provider", addrOrEmpty(f.Provider))
}

func withQuery(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

func addrOrEmpty(a types.Address) string {
	if a.IsZero() {
		return ""
	}
	return a.String()
}

// PathChallenges lists liveness and hardware challenges of provider (zero: anyone's),
// in state (empty: all; "pending": open or answered), of lease (0: any).
func PathChallenges(provider types.Address, state string, lease uint64) string {
	l := ""
	if lease > 0 {
		l = strconv.FormatUint(lease, 10)
	}
	return withQuery("/liveness/challenges", "provider", addrOrEmpty(provider), "state", state, "lease", l)
}

// PathChallenge is one liveness or hardware challenge.
func PathChallenge(id uint64) string { return "/liveness/challenge/" + strconv.FormatUint(id, 10) }

// PathScores is the challenge scores of provider (zero: every provider's).
func PathScores(provider types.Address) string {
	return withQuery("/liveness/scores", "provider", addrOrEmpty(provider))
}

// PathAttestation is a provider's TEE attestation record.
func PathAttestation(a types.Address) string { return "/tee/attestation/" + a.String() }

// PathInferRequest is an on-chain inference request.
func PathInferRequest(id uint64) string { return "/infer/request/" + strconv.FormatUint(id, 10) }

// PathInferModel is a registered model.
func PathInferModel(id string) string { return "/infer/model/" + url.PathEscape(id) }

// PathAsks lists the order book's asks of a class (a GPU model, or cpu).
func PathAsks(class string) string { return "/market/asks/" + url.PathEscape(class) }

// PathVerifier is a registered verifier.
func PathVerifier(a types.Address) string { return "/verify/verifier/" + a.String() }

// PathInferOpenFor lists the open inference requests for model.
func PathInferOpenFor(model string) string { return withQuery(PathInferOpen, "model", model) }

// Verification queries (x/verify).
const (
	PathCommitments      = "/verify/commitments"
	PathVerifyChallenges = "/verify/challenges"
	PathVerifiers        = "/verify/verifiers"
)

// PathVerifierDuty is what verifier a has to check of lease id now.
func PathVerifierDuty(lease uint64, a types.Address) string {
	return "/verify/duty/" + strconv.FormatUint(lease, 10) + "/" + a.String()
}

// PathCommitment is one work commitment.
func PathCommitment(id uint64) string { return "/verify/commitment/" + strconv.FormatUint(id, 10) }

// PathVerifyChallenge is one verification challenge.
func PathVerifyChallenge(id uint64) string {
	return "/verify/challenge/" + strconv.FormatUint(id, 10)
}
