package testnet

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/consensus"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	cmtcons "github.com/cometbft/cometbft/proto/tendermint/consensus"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmttypes "github.com/cometbft/cometbft/types"
	"github.com/cometbft/cometbft/version"

	"github.com/kiln-network/kiln/ports"
)

// The twin: a second signer of one validator's key on the network, as CometBFT's
// own byzantine consensus tests make one (a node whose vote signing is replaced, sending
// its conflicting vote straight to peers). It is a CometBFT peer with a node key of
// its own and the four consensus channels, which the honest validators accept like any
// other. Every validator announces each vote it adds (HasVote); when one announces it
// holds the copied validator's prevote or precommit for height H, round R, the twin
// signs a vote of the same key, height, round and type for a block that does not exist
// and sends it to that validator. The validator's consensus then holds two votes of
// one key for one step, refuses the second as conflicting and hands both to its
// evidence pool (CometBFT's State.tryAddVote -> evpool.ReportConflictingVotes): the
// honest validators find the double-sign themselves, at every height the twin signs.
// The twin's votes never count: a vote that conflicts with one already held is not
// added, so consensus goes on exactly as without it.

// twin is the running double-signer.
type twin struct {
	chainID string
	pv      *privval.FilePV // the copied validator's key, with the twin's own (empty) sign state
	addr    cmttypes.Address
	skip    p2p.ID // the copied validator's own node: the twin does not talk to it
	sw      *p2p.Switch
	valset  func(ctx context.Context, h int64) (*cmttypes.ValidatorSet, error)
	logf    func(format string, args ...any)
	events  chan hasVote
	done    chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	votes  map[step]*cmttypes.Vote // the conflicting votes signed, by height/round/type
	sent   map[sentTo]bool
	nsent  int
	first  int64
	failed string // the last reason a vote could not be signed or sent, for the log
}

type step struct {
	h int64
	r int32
	t cmtproto.SignedMsgType
}

type sentTo struct {
	step
	peer p2p.ID
}

type hasVote struct {
	peer p2p.Peer
	m    *cmtcons.HasVote
}

// startTwin starts a twin of the validator whose priv_validator_key.json is keyFile,
// in dir, dialing peers ("id@host:port"). valset returns the validator set of a height.
func startTwin(dir, chainID, keyFile string, skip p2p.ID, peers []string, valset func(context.Context, int64) (*cmttypes.ValidatorSet, error), logf func(string, ...any)) (*twin, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pv := privval.LoadFilePVEmptyState(keyFile, filepath.Join(dir, "priv_validator_state.json"))
	t := &twin{chainID: chainID, pv: pv, addr: pv.Key.Address, skip: skip, valset: valset, logf: logf,
		events: make(chan hasVote, 4096), done: make(chan struct{}), votes: map[step]*cmttypes.Vote{}, sent: map[sentTo]bool{}}

	nodeKey := &p2p.NodeKey{PrivKey: ed25519.GenPrivKey()}
	p, err := ports.Pick("127.0.0.1", 1)
	if err != nil {
		return nil, err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", p[0])
	info := p2p.DefaultNodeInfo{
		ProtocolVersion: p2p.NewProtocolVersion(version.P2PProtocol, version.BlockProtocol, 0),
		DefaultNodeID:   nodeKey.ID(),
		ListenAddr:      listen,
		Network:         chainID,
		Version:         version.TMCoreSemVer,
		Channels:        []byte{consensus.StateChannel, consensus.DataChannel, consensus.VoteChannel, consensus.VoteSetBitsChannel},
		Moniker:         "twin",
	}
	if err := info.Validate(); err != nil {
		return nil, fmt.Errorf("twin node info: %w", err)
	}
	pc := cfg.DefaultP2PConfig()
	pc.AllowDuplicateIP = true // every node is on 127.0.0.1
	tr := p2p.NewMultiplexTransport(info, *nodeKey, p2p.MConnConfig(pc))
	la, err := p2p.NewNetAddressString(p2p.IDAddressString(nodeKey.ID(), listen))
	if err != nil {
		return nil, err
	}
	if err := tr.Listen(*la); err != nil {
		return nil, fmt.Errorf("twin listen on %s: %w", listen, err)
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "twin.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tr.Close()
		return nil, err
	}
	logger := cmtlog.NewFilter(cmtlog.NewTMLogger(cmtlog.NewSyncWriter(logFile)), cmtlog.AllowInfo())
	t.sw = p2p.NewSwitch(pc, tr)
	t.sw.SetLogger(logger)
	t.sw.SetNodeInfo(info)
	t.sw.SetNodeKey(nodeKey)
	r := &twinReactor{t: t}
	r.BaseReactor = *p2p.NewBaseReactor("TWIN", r)
	t.sw.AddReactor("CONSENSUS", r)
	if err := t.sw.AddPersistentPeers(peers); err != nil {
		logFile.Close()
		tr.Close()
		return nil, fmt.Errorf("twin peers %v: %w", peers, err)
	}
	if err := t.sw.Start(); err != nil {
		logFile.Close()
		tr.Close()
		return nil, fmt.Errorf("start the twin's switch: %w", err)
	}
	if err := t.sw.DialPeersAsync(peers); err != nil {
		t.sw.Stop()
		logFile.Close()
		return nil, err
	}
	t.wg.Add(1)
	go func() { defer t.wg.Done(); t.run() }()
	go func() { t.wg.Wait(); logFile.Close() }()
	return t, nil
}

// stop disconnects the twin; it signs nothing after it returns.
func (t *twin) stop() {
	select {
	case <-t.done:
		return
	default:
	}
	close(t.done)
	t.sw.Stop()
	t.wg.Wait()
}

// signed returns how many conflicting votes the twin signed, the first height, and
// the vote it signed for (h, r, typ), if any.
func (t *twin) signed(h int64, r int32, typ cmtproto.SignedMsgType) (int, int64, *cmttypes.Vote) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.votes), t.first, t.votes[step{h, r, typ}]
}

func (t *twin) run() {
	cache := map[int64]*cmttypes.ValidatorSet{}
	for {
		select {
		case <-t.done:
			return
		case e := <-t.events:
			if err := t.answer(e, cache); err != nil && err.Error() != t.failed {
				t.failed = err.Error()
				t.logf("twin: %v", err)
			}
		}
	}
}

// answer sends peer e a conflicting vote when e announces it holds the copied
// validator's vote.
func (t *twin) answer(e hasVote, cache map[int64]*cmttypes.ValidatorSet) error {
	m := e.m
	typ := m.Type
	if typ != cmtproto.PrevoteType && typ != cmtproto.PrecommitType || e.peer.ID() == t.skip {
		return nil
	}
	k := sentTo{step{m.Height, m.Round, typ}, e.peer.ID()}
	t.mu.Lock()
	done := t.sent[k]
	t.mu.Unlock()
	if done {
		return nil
	}
	vs, ok := cache[m.Height]
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		vs, err = t.valset(ctx, m.Height)
		cancel()
		if err != nil {
			return fmt.Errorf("validator set at %d: %w", m.Height, err)
		}
		for h := range cache {
			if h < m.Height-10 {
				delete(cache, h)
			}
		}
		cache[m.Height] = vs
	}
	idx, val := vs.GetByAddress(t.addr)
	if val == nil || idx != m.Index {
		return nil // another validator's vote, or the copied one is out of the set
	}
	v, err := t.vote(k.step, idx)
	if err != nil {
		return err
	}
	if !e.peer.Send(p2p.Envelope{ChannelID: consensus.VoteChannel, Message: &cmtcons.Vote{Vote: v.ToProto()}}) {
		return fmt.Errorf("send a vote to %s: its queue is full or it is gone", e.peer.ID())
	}
	t.mu.Lock()
	t.sent[k] = true
	t.nsent++
	t.mu.Unlock()
	return nil
}

// vote returns the twin's vote for s, signing it the first time: for a block ID no
// honest node ever proposed (a hash of the chain-id and s), so that it conflicts with
// whatever the real validator signed, for a block or for nil.
func (t *twin) vote(s step, idx int32) (*cmttypes.Vote, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.votes[s]; ok {
		return v, nil
	}
	var b [8 + 4 + 4]byte
	binary.BigEndian.PutUint64(b[:], uint64(s.h))
	binary.BigEndian.PutUint32(b[8:], uint32(s.r))
	binary.BigEndian.PutUint32(b[12:], uint32(s.t))
	hash := sha256.Sum256(append([]byte("kiln twin block "+t.chainID), b[:]...))
	parts := sha256.Sum256(hash[:])
	v := &cmttypes.Vote{Type: s.t, Height: s.h, Round: s.r, Timestamp: time.Now().UTC(),
		BlockID:          cmttypes.BlockID{Hash: hash[:], PartSetHeader: cmttypes.PartSetHeader{Total: 1, Hash: parts[:]}},
		ValidatorAddress: t.addr, ValidatorIndex: idx}
	p := v.ToProto()
	if err := t.pv.SignVote(t.chainID, p); err != nil {
		return nil, fmt.Errorf("sign %v at %d/%d: %w", s.t, s.h, s.r, err)
	}
	// NB: FilePV also signs a vote extension for every non-nil precommit; Kiln's
	// chains do not enable extensions and a validator refuses a vote that carries an
	// extension signature, so only the vote's own signature is kept.
	v.Signature, v.Timestamp = p.Signature, p.Timestamp
	t.votes[s] = v
	if t.first == 0 || s.h < t.first {
		t.first = s.h
	}
	return v, nil
}

// twinReactor is the twin's consensus "reactor": it reads the peers' HasVote
// announcements and ignores everything else they send.
type twinReactor struct {
	p2p.BaseReactor
	t *twin
}

// GetChannels are the consensus reactor's channels, as CometBFT declares them.
func (r *twinReactor) GetChannels() []*p2p.ChannelDescriptor {
	var out []*p2p.ChannelDescriptor
	for _, id := range []byte{consensus.StateChannel, consensus.DataChannel, consensus.VoteChannel, consensus.VoteSetBitsChannel} {
		out = append(out, &p2p.ChannelDescriptor{ID: id, Priority: 5, SendQueueCapacity: 100, RecvBufferCapacity: 100 * 100, RecvMessageCapacity: 1 << 20, MessageType: &cmtcons.Message{}})
	}
	return out
}

// Receive queues HasVote announcements for the twin; it never blocks the peer.
func (r *twinReactor) Receive(e p2p.Envelope) {
	if m, ok := e.Message.(*cmtcons.HasVote); ok {
		select {
		case r.t.events <- hasVote{peer: e.Src, m: m}:
		default:
		}
	}
}

// twinPeers lists "id@host:port" of every node in ln but the one at index skip.
func twinPeers(ids, addrs []string, skip int) []string {
	var out []string
	for k := range ids {
		if k != skip {
			out = append(out, ids[k]+"@"+strings.TrimPrefix(addrs[k], "tcp://"))
		}
	}
	return out
}
