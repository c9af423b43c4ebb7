package infer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	xinfer "github.com/kiln-network/kiln/x/infer"
)

// Answerer answers the chain's open requests for one model with one provider key.
type Answerer struct {
	Client *client.Client
	Key    ed25519.PrivateKey
	Model  Model
	Log    *slog.Logger
	// Corrupt, for tests and demos of the k-agreement, changes every output (a
	// provider that cheats or runs other weights); it is outvoted.
	Corrupt bool

	answered map[uint64]bool
}

// Run answers, after every new block, each open request for the model that this
// provider has not answered yet, all in one transaction. It returns when ctx ends.
func (a *Answerer) Run(ctx context.Context) error {
	if a.Log == nil {
		a.Log = slog.New(slog.DiscardHandler)
	}
	a.answered = map[uint64]bool{}
	addr := types.AddressFromPubKey(a.Key.Public().(ed25519.PublicKey))
	h, err := a.Client.AppHeight(ctx)
	if err != nil {
		return err
	}
	for {
		if err := a.Client.WaitHeight(ctx, h+1); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		h++
		if err := a.answerOpen(ctx, addr); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.Log.Warn("answer inference requests", "model", a.Model.ID(), "err", err)
		}
		if cur, err := a.Client.AppHeight(ctx); err == nil && cur > h {
			h = cur
		}
	}
}

func (a *Answerer) answerOpen(ctx context.Context, addr types.Address) error {
	var open struct {
		Requests []xinfer.Request `json:"requests"`
	}
	if err := a.Client.QueryJSON(ctx, client.PathInferOpenFor(a.Model.ID()), &open); err != nil {
		return fmt.Errorf("list open requests: %w", err)
	}
	var msgs []types.Msg
	var ids []uint64
	for _, r := range open.Requests {
		if a.answered[r.ID] {
			continue
		}
		mine := false
		for _, x := range r.Answers {
			mine = mine || x.Provider == addr
		}
		if mine {
			a.answered[r.ID] = true
			continue
		}
		out, err := a.Model.Infer(r.Input)
		if err != nil {
			a.Log.Warn("inference failed", "request", r.ID, "err", err)
			continue
		}
		if a.Corrupt {
			out = append(out, '!')
		}
		msgs = append(msgs, &xinfer.MsgInferResult{Provider: addr, RequestID: r.ID, Output: out, OutputHash: xinfer.HashOutput(out)})
		ids = append(ids, r.ID)
		if len(msgs) == 32 { // NB: one tx stays well under the 64 KiB limit
			break
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	_, err := a.Client.Send(ctx, a.Key, client.SignOptions{}, msgs...)
	var te *client.TxError
	if err != nil && !errors.As(err, &te) {
		return fmt.Errorf("send %d answers: %w", len(msgs), err)
	}
	for _, id := range ids {
		a.answered[id] = true
	}
	if err != nil {
		return fmt.Errorf("answers refused: %w", err)
	}
	return nil
}
