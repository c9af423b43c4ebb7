package client_test

import (
	"testing"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// The paths are the chain's query routes; a change here breaks every client
// that speaks to an older node, so each is pinned.
func TestPaths(t *testing.T) {
	a := types.ModuleAddress("paths-test")
	s := a.String()
	for got, want := range map[string]string{
		client.PathBalances(a):                  "/bank/balances/" + s,
		client.PathAccount(a):                   "/auth/account/" + s,
		client.PathProvider(a):                  "/registry/provider/" + s,
		client.PathCert(a):                      "/cert/" + s,
		client.PathOrder(7):                     "/market/order/7",
		client.PathChallenges(a, "open", 4):     "/liveness/challenges?lease=4&provider=" + s + "&state=open",
		client.PathChallenge(9):                 "/liveness/challenge/9",
		client.PathScores(types.Address{}):      "/liveness/scores",
		client.PathAttestation(a):               "/tee/attestation/" + s,
		client.PathInferRequest(5):              "/infer/request/5",
		client.PathInferModel("tiny/v1"):        "/infer/model/tiny%2Fv1",
		client.PathAsks("h100"):                 "/market/asks/h100",
		client.PathWhyNoBids(7):                 "/market/order/7/match",
		client.PathLease(7):                     "/market/lease/7",
		client.PathCapacity(a):                  "/market/provider/" + s + "/capacity",
		client.PathEscrow(7):                    "/escrow/account/7",
		client.PathOrders("", types.Address{}):  "/market/orders",
		client.PathOrders("open", a):            "/market/orders?owner=" + s + "&state=open",
		client.PathBids(0, types.Address{}):     "/market/bids",
		client.PathBids(3, a):                   "/market/bids?order=3&provider=" + s,
		client.PathLeases(market.LeaseFilter{}): "/market/leases",
		client.PathLeases(market.LeaseFilter{State: "active", Provider: a}): "/market/leases?provider=" + s + "&state=active",
		client.PathChallenges(a, "open", 4):                                 "/liveness/challenges?lease=4&provider=" + s + "&state=open",
		client.PathChallenges(types.Address{}, "", 0):                       "/liveness/challenges",
		client.PathChallenge(9):                                             "/liveness/challenge/9",
		client.PathScores(a):                                                "/liveness/scores?provider=" + s,
		client.PathInferRequest(2):                                          "/infer/request/2",
		client.PathInferOpenFor("tiny-mlp"):                                 "/infer/open?model=tiny-mlp",
		client.PathInferModel("../x"):                                       "/infer/model/..%2Fx",
		client.PathAttestation(a):                                           "/tee/attestation/" + s,
		client.PathAsks("h100"):                                             "/market/asks/h100",
	} {
		if got != want {
			t.Errorf("path = %q, want %q", got, want)
		}
	}
}
