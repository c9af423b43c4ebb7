package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	sevdata "github.com/google/go-sev-guest/verify/testdata"
	tdxdata "github.com/google/go-tdx-guest/testing/testdata"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/infer"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/tee"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	xinfer "github.com/kiln-network/kiln/x/infer"
	"github.com/kiln-network/kiln/x/registry"
)

// InferResult is what `kiln bench infer` reports.
type InferResult struct {
	Requests  int    `json:"requests"`
	Providers int    `json:"providers"`
	AgreeK    uint32 `json:"agree_k"`
	Model     string `json:"model"`
	// Request → result on chain: blocks between the request's block and the block that
	// resolved it, and the wall time from broadcasting the request to seeing the result
	// in a query.
	RequestToResultBlocksP50 float64 `json:"request_to_result_blocks_p50"`
	RequestToResultBlocksMax float64 `json:"request_to_result_blocks_max"`
	RequestToResultMSP50     float64 `json:"request_to_result_ms_p50"`
	RequestToResultMSMax     float64 `json:"request_to_result_ms_max"`
	BlockTimeMS              float64 `json:"block_time_ms"`
	// Attestation verification per report (median of AttestationRuns), of the SEV-SNP
	// and TDX samples the verification libraries ship.
	AttestationVerifyMS    float64 `json:"attestation_verify_ms"`
	AttestationVerifyMSTDX float64 `json:"attestation_verify_ms_tdx"`
	AttestationRuns        int     `json:"attestation_runs"`
	// AttestationFitsCheckTx: the slower of the two verifies in under
	// CheckTxBudgetMS, the share of a block's time one attestation may take in CheckTx
	// (and again in FinalizeBlock) so that a block with MaxAttestationsPerBlock of
	// them still spends under a tenth of the block time verifying.
	AttestationFitsCheckTx bool    `json:"attestation_fits_checktx"`
	CheckTxBudgetMS        float64 `json:"checktx_budget_ms"`
}

// MaxAttestationsPerBlock is the burst the CheckTx budget is sized for: every provider
// of a 20-provider region re-attesting in the same block.
const MaxAttestationsPerBlock = 20

// Infer runs an embedded single-validator chain with providers providers answering
// with the built-in model, posts requests inference requests one after another and
// measures request → result on chain; then times attestation verification.
func Infer(ctx context.Context, requests, providers int, progress io.Writer) (InferResult, error) {
	if requests < 1 || requests > 1000 {
		return InferResult{}, fmt.Errorf("requests %d: must be 1 to 1000", requests)
	}
	if providers < 1 || providers > 8 {
		return InferResult{}, fmt.Errorf("providers %d: must be 1 to 8", providers)
	}
	if progress == nil {
		progress = io.Discard
	}
	r := InferResult{Requests: requests, Providers: providers, AttestationRuns: 50}
	if err := inferChain(ctx, &r, progress); err != nil {
		return r, err
	}
	fmt.Fprintf(progress, "==> attestation verification, %d runs of each sample\n", r.AttestationRuns)
	r.AttestationVerifyMS = round3(timeVerify(r.AttestationRuns, sevdata.AttestationBytes[:1184],
		tee.Options{Now: time.Date(2022, 9, 24, 1, 0, 0, 0, time.UTC), Collateral: tee.Collateral{VCEK: sevdata.VcekBytes}, AllowDebug: true}))
	r.AttestationVerifyMSTDX = round3(timeVerify(r.AttestationRuns, tdxdata.RawQuote, tee.Options{Now: time.Date(2023, 7, 1, 1, 0, 0, 0, time.UTC)}))
	r.CheckTxBudgetMS = round3(r.BlockTimeMS / 10 / MaxAttestationsPerBlock)
	r.AttestationFitsCheckTx = max(r.AttestationVerifyMS, r.AttestationVerifyMSTDX) < r.CheckTxBudgetMS
	return r, nil
}

// timeVerify returns the median milliseconds of runs verifications of raw; it panics
// if the sample does not verify (the benchmark would measure a refusal).
func timeVerify(runs int, raw []byte, o tee.Options) float64 {
	var ms []float64
	for i := 0; i < runs; i++ {
		start := time.Now()
		res := tee.Verify(raw, o)
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		if !res.Valid {
			panic(fmt.Sprintf("bench: sample %s does not verify: %s %s", res.Type, res.Reason, res.Detail))
		}
	}
	return percentile(ms, 50)
}

func inferKey(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("kiln-bench-infer/" + name))
	return ed25519.NewKeyFromSeed(s[:])
}

func inferChain(ctx context.Context, r *InferResult, progress io.Writer) error {
	home, err := os.MkdirTemp("", "kiln-bench-infer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	tenantKey := inferKey("tenant")
	keys := []ed25519.PrivateKey{tenantKey}
	for i := 0; i < r.Providers; i++ {
		keys = append(keys, inferKey("provider-"+strconv.Itoa(i)))
	}
	var accounts []bank.GenesisBalance
	for _, k := range keys {
		accounts = append(accounts, bank.GenesisBalance{Address: addrOf(k), Coins: types.Coins{types.NewCoin(types.NativeDenom, 1<<40)}})
	}
	const chainID = "kiln-bench-infer"
	if _, err := node.Init(node.InitOptions{Home: home, ChainID: chainID, BlockTime: node.DefaultBlockTime, KeyringBackend: keyring.BackendTest, Accounts: accounts}); err != nil {
		return err
	}
	loaded, err := node.LoadConfig(home)
	if err != nil {
		return err
	}
	node.UseFreePorts(loaded)
	n, err := node.Start(loaded, node.Options{CometLevel: 100})
	if err != nil {
		return err
	}
	defer n.Stop()
	r.BlockTimeMS = float64(node.DefaultBlockTime.Milliseconds())
	cl, err := client.New(n.RPCAddr())
	if err != nil {
		return err
	}
	if err := cl.WaitHeight(ctx, 1); err != nil {
		return err
	}
	var ip xinfer.Params
	if err := cl.QueryJSON(ctx, client.PathInferParams, &ip); err != nil {
		return fmt.Errorf("infer params: %w", err)
	}
	r.AgreeK = ip.AgreeK
	if int(ip.AgreeK) > r.Providers {
		return fmt.Errorf("agree_k is %d but only %d providers answer: no request would resolve", ip.AgreeK, r.Providers)
	}
	model := infer.NewTiny()
	r.Model = model.ID()
	fmt.Fprintf(progress, "==> chain up; registering %d providers serving %s (hash %s)\n", r.Providers, model.ID(), model.Hash()[:16])
	certPEM, _, err := certpem.Generate("127.0.0.1", []string{"127.0.0.1"}, 24*time.Hour, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	if _, err := cl.Send(ctx, tenantKey, client.SignOptions{}, &xinfer.MsgRegisterModel{Owner: addrOf(tenantKey), ID: model.ID(), Hash: model.Hash()}); err != nil {
		return fmt.Errorf("register model: %w", err)
	}
	minStake := app.DefaultGenesis().Params.Registry.MinProviderStake
	for _, k := range keys[1:] {
		inv := registry.Inventory{Source: "declared", Region: "local", CPUCores: 2, MemoryBytes: 4 << 30, StorageBytes: 10 << 30,
			GPUs: []registry.GPU{}, Attributes: []registry.Attribute{}, Runtime: registry.Runtime{Executor: "process"}}
		if _, err := cl.Send(ctx, k, client.SignOptions{},
			&registry.MsgRegisterProvider{Owner: addrOf(k), Endpoint: "https://127.0.0.1:1", CertPEM: certPEM, Inventory: inv, Stake: types.NewCoin(types.NativeDenom, minStake)},
			&xinfer.MsgServeModel{Provider: addrOf(k), Model: model.ID(), Hash: model.Hash()}); err != nil {
			return fmt.Errorf("register provider: %w", err)
		}
	}
	actx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, r.Providers)
	for _, k := range keys[1:] {
		a := &infer.Answerer{Client: cl, Key: k, Model: model}
		go func() { done <- a.Run(actx) }()
	}
	var blocks, ms []float64
	tenant := addrOf(tenantKey)
	for i := 0; i < r.Requests; i++ {
		start := time.Now()
		res, err := cl.Send(ctx, tenantKey, client.SignOptions{},
			&xinfer.MsgInferRequest{Requester: tenant, Model: model.ID(), Input: []byte("bench request " + strconv.Itoa(i)), MaxFee: 1000})
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		id, _ := strconv.ParseUint(res.EventAttr("infer_requested", "request"), 10, 64)
		// Poll for the result: 20 ms is far below a block; the request's deadline (10
		// blocks) bounds the wait.
		for {
			var req xinfer.Request
			if err := cl.QueryJSON(ctx, client.PathInferRequest(id), &req); err != nil {
				return fmt.Errorf("request %d: %w", id, err)
			}
			if req.State == xinfer.StateResolved {
				blocks = append(blocks, float64(req.ResolvedHeight-req.CreatedHeight))
				ms = append(ms, float64(time.Since(start).Microseconds())/1000)
				break
			}
			if req.State == xinfer.StateExpired {
				return fmt.Errorf("request %d expired unanswered (answers: %d)", id, len(req.Answers))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		fmt.Fprintf(progress, "    request %d: %.0f blocks, %.0f ms\n", id, blocks[len(blocks)-1], ms[len(ms)-1])
	}
	stop()
	for range keys[1:] {
		if err := <-done; err != nil {
			return fmt.Errorf("answerer: %w", err)
		}
	}
	sort.Float64s(blocks)
	r.RequestToResultBlocksP50, r.RequestToResultBlocksMax = percentile(blocks, 50), maxOf(blocks)
	r.RequestToResultMSP50, r.RequestToResultMSMax = round3(percentile(ms, 50)), round3(maxOf(ms))
	return nil
}

func addrOf(k ed25519.PrivateKey) types.Address {
	return types.AddressFromPubKey(k.Public().(ed25519.PublicKey))
}
