package testnet

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/ports"
)

// Clock skew. A validator's wall clock enters CometBFT v0.38 consensus in one place
// only: the timestamp of each vote it signs. Block time is the power-weighted median
// of the last commit's vote timestamps (BFT time) and round timeouts are durations, so
// a validator with a wrong clock is a validator whose votes carry wrong times. The
// harness makes one by signing for it: the validator runs with CometBFT's remote
// signer socket (priv_validator_laddr, as validators behind a KMS do) and the
// harness's signer shifts every vote timestamp by the skew before signing with the
// validator's key. Proposal timestamps are left alone: v0.38 uses them for nothing
// but the signature, and CometBFT keeps only the signature of a signed proposal (a
// shifted time would not match it). NB: the process clock itself cannot be offset
// here: Go reads the clock through the vDSO (libfaketime cannot reach it), Linux
// time namespaces offset only the monotonic and boot clocks, and setting the host's
// clock would skew every process on the machine.

// skewedSigner is a FilePV whose votes carry timestamps off by offset.
type skewedSigner struct {
	*privval.FilePV
	offset atomic.Int64 // ns
}

var _ cmttypes.PrivValidator = (*skewedSigner)(nil)

// SignVote shifts the vote's timestamp by the skew and signs it.
func (s *skewedSigner) SignVote(chainID string, v *cmtproto.Vote) error {
	v.Timestamp = v.Timestamp.Add(time.Duration(s.offset.Load()))
	return s.FilePV.SignVote(chainID, v)
}

// skewSigner signs for one validator over CometBFT's remote-signer socket.
type skewSigner struct {
	signer *skewedSigner
	server *privval.SignerServer
}

// startSkewSigner points validator i at a remote signer (its priv_validator_laddr)
// and starts that signer in the harness, holding the validator's key and sign state;
// it dials the node until the node listens. Call before starting node i.
func (n *net) startSkewSigner(i int) (*skewSigner, error) {
	home := n.ln.Nodes[i].Home
	conf, err := node.LoadConfig(home)
	if err != nil {
		return nil, err
	}
	if n.ns != nil {
		// The node's namespace has ports of its own; the harness reaches its address.
		conf.PrivValidatorListenAddr = fmt.Sprintf("tcp://%s:26659", n.ns.addr(i))
	} else {
		p, err := ports.Pick("127.0.0.1", 1)
		if err != nil {
			return nil, err
		}
		conf.PrivValidatorListenAddr = fmt.Sprintf("tcp://127.0.0.1:%d", p[0])
	}
	cfg.WriteConfigFile(filepath.Join(home, "config", "config.toml"), conf)
	s := &skewSigner{signer: &skewedSigner{FilePV: privval.LoadFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())}}
	// Retries every 100 ms for 2 minutes: the node opens the socket while it starts.
	ep := privval.NewSignerDialerEndpoint(cmtlog.NewNopLogger(), privval.DialTCPFn(conf.PrivValidatorListenAddr, 3*time.Second, ed25519.GenPrivKey()),
		privval.SignerDialerEndpointRetryWaitInterval(100*time.Millisecond), privval.SignerDialerEndpointConnRetries(1200))
	s.server = privval.NewSignerServer(ep, n.ln.ChainID, s.signer)
	if err := s.server.Start(); err != nil {
		return nil, fmt.Errorf("remote signer of node%d: %w", i, err)
	}
	return s, nil
}

func (s *skewSigner) set(d time.Duration) { s.signer.offset.Store(int64(d)) }

func (s *skewSigner) stop() { s.server.Stop() }
