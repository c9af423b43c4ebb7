package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"

	coretypes "github.com/cometbft/cometbft/rpc/core/types"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
)

// sender signs and broadcasts the daemon's transactions. Txs of one account must carry
// consecutive sequence numbers, so every tx goes through this one sender, which
// tracks the next sequence locally (several txs may then land in one block) and
// resyncs from the node's answer when it is refused for its sequence.
type sender struct {
	c       *client.Client
	key     ed25519.PrivateKey
	addr    types.Address
	chainID string
	auth    auth.Params
	log     *slog.Logger

	mu    sync.Mutex
	seq   uint64
	stale bool // the next send first reloads the sequence from the chain
	sent  uint64
}

func newSender(ctx context.Context, c *client.Client, key ed25519.PrivateKey, log *slog.Logger) (*sender, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	ap, err := c.AuthParams(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth params: %w", err)
	}
	s := &sender{c: c, key: key, addr: types.AddressFromPubKey(key.Public().(ed25519.PublicKey)), chainID: st.ChainID, auth: ap, log: log, stale: true}
	return s, nil
}

// atSeq finds the account's expected sequence in a sequence refusal ("account X is
// at sequence N, tx has M"); CheckTx answers from its mempool state, which counts txs
// not yet in a block, unlike a query.
var atSeq = regexp.MustCompile(`is at sequence (\d+)`)

func isSeqErr(code uint32) bool {
	return code == types.CodeSequenceReplayed || code == types.CodeSequenceOutOfOrder
}

// send broadcasts msgs in one tx and returns once the node's mempool accepted it
// (CheckTx ran every message against the pending state), not once it is in a block.
// A refused tx returns a *client.TxError and does not use a sequence number.
func (s *sender) send(ctx context.Context, msgs ...types.Msg) error {
	_, err := s.broadcast(ctx, false, msgs...)
	return err
}

// sendCommit is send that waits until the tx is in a block (registration: what
// follows needs the record on chain). A tx that reached a block and failed there used
// its sequence number.
func (s *sender) sendCommit(ctx context.Context, msgs ...types.Msg) (client.TxResponse, error) {
	return s.broadcast(ctx, true, msgs...)
}

// maxSeqRetries bounds the resyncs of one send: each takes the sequence the node
// names, so a second refusal means another sender of the same key raced us; three
// such races in a row are not something retrying fixes.
const maxSeqRetries = 3

func (s *sender) broadcast(ctx context.Context, commit bool, msgs ...types.Msg) (client.TxResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if s.stale {
			acc, found, err := s.c.Account(ctx, s.addr)
			if err != nil {
				return client.TxResponse{}, fmt.Errorf("load sequence of %s: %w", s.addr, err)
			}
			if !found {
				return client.TxResponse{}, fmt.Errorf("account %s does not exist on chain: fund it first", s.addr)
			}
			s.seq, s.stale = acc.Sequence, false
		}
		raw, err := client.SignWithMinFee(s.key, s.chainID, s.seq, s.auth, "", msgs...)
		if err != nil {
			return client.TxResponse{}, fmt.Errorf("sign tx: %w", err)
		}
		var r client.TxResponse
		if commit {
			r, err = s.c.BroadcastCommit(ctx, raw)
		} else {
			var res *coretypes.ResultBroadcastTx
			if res, err = s.c.RPC.BroadcastTxSync(ctx, raw); err == nil {
				r = client.TxResponse{Code: res.Code, Log: res.Log}
				if res.Code != 0 {
					err = &client.TxError{TxResponse: r}
				}
			}
		}
		var te *client.TxError
		switch {
		case err == nil:
			s.seq++
			s.sent++
			return r, nil
		case !errors.As(err, &te):
			// NB: the tx may or may not be in the mempool; the next send learns which
			// from the sequence the node expects.
			s.stale = true
			return r, fmt.Errorf("broadcast tx: %w", err)
		case r.Height > 0:
			// NB: it reached a block and failed there: its sequence number is spent.
			s.seq++
			return r, err
		case isSeqErr(te.Code) && attempt < maxSeqRetries:
			if m := atSeq.FindStringSubmatch(te.Log); m != nil {
				n, _ := strconv.ParseUint(m[1], 10, 64)
				s.log.Debug("resync sequence", "had", s.seq, "node expects", n)
				s.seq = n
			} else {
				// NB: a copy refused by the mempool cache names no sequence: ask.
				s.stale = true
			}
			continue
		}
		return r, err
	}
}

// sendEach sends msgs in one tx; if the node refuses it for a message (not a
// sequence), it sends them one by one so that one stale message does not hold back
// the others. It returns the errors of the messages refused, by index.
func (s *sender) sendEach(ctx context.Context, msgs []types.Msg) map[int]error {
	if len(msgs) == 0 {
		return nil
	}
	err := s.send(ctx, msgs...)
	if err == nil {
		return nil
	}
	var te *client.TxError
	if len(msgs) == 1 || !errors.As(err, &te) {
		out := map[int]error{}
		for i := range msgs {
			out[i] = err
		}
		return out
	}
	out := map[int]error{}
	for i, m := range msgs {
		if err := s.send(ctx, m); err != nil {
			out[i] = err
		}
	}
	return out
}
