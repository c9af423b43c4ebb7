package sdl

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"
)

// KilnDenom is Kiln's base denomination: 1 KILN = 10^6 ukiln.
const KilnDenom = "ukiln"

// Config controls how SDL prices become Kiln prices.
type Config struct {
	// Rates maps an SDL denomination to how many ukiln one unit of it is
	// worth. A key ending in "*" is a prefix match ("ibc/*"), used when no
	// exact key matches. Values are decimal strings ("1", "0.25").
	Rates map[string]string
	// AkashBlockTime is the block time SDL prices are written against.
	AkashBlockTime time.Duration
	// KilnBlockTime is Kiln's block time; prices are rescaled so that they
	// mean the same per hour.
	KilnBlockTime time.Duration
}

// DefaultConfig returns the conversion documented in the package comment.
func DefaultConfig() Config {
	return Config{
		Rates: map[string]string{
			// NB: 1 KILN is pegged to 1 USD for SDL conversion; uact
			// (Akash Compute Token) and USDC are USD-denominated.
			"uact": "1",
			// AKT floats; 1 AKT = 1 KILN is a placeholder a tenant
			// overrides with the day's rate.
			"uakt": "1",
			// USDC over IBC on Akash (Noble and Axelar channels).
			"ibc/170C677610AC31DF0904FFE09CD3B5C657492170E7E52372E48756B71E56F2F1": "1",
			"ibc/12C6A0C374171B595A0A9E18B83FA09D295FB1F2D8C6DAA3AC28683471752D84": "1",
			// Other IBC denoms are assumed to be USD stablecoins; Parse
			// warns when this fallback is used.
			"ibc/*": "1",
		},
		AkashBlockTime: 6098 * time.Millisecond,
		KilnBlockTime:  time.Second,
	}
}

// Validate checks that the rates are positive decimals and the block times
// positive.
func (c Config) Validate() error {
	if c.AkashBlockTime <= 0 || c.KilnBlockTime <= 0 {
		return fmt.Errorf("sdl config: block times must be > 0 (akash %v, kiln %v)", c.AkashBlockTime, c.KilnBlockTime)
	}
	for denom, rate := range c.Rates {
		r, ok := new(big.Rat).SetString(rate)
		if !ok || r.Sign() <= 0 {
			return fmt.Errorf("sdl config: rate for %q must be a positive decimal (got %q)", denom, rate)
		}
	}
	return nil
}

// rate returns the ukiln value of one unit of denom and whether a wildcard
// entry was used.
func (c Config) rate(denom string) (r *big.Rat, wildcard bool, ok bool) {
	if denom == KilnDenom {
		return big.NewRat(1, 1), false, true
	}
	if s, found := c.Rates[denom]; found {
		r, ok = new(big.Rat).SetString(s)
		return r, false, ok
	}
	best := ""
	for k := range c.Rates {
		if strings.HasSuffix(k, "*") && strings.HasPrefix(denom, strings.TrimSuffix(k, "*")) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return nil, false, false
	}
	r, ok = new(big.Rat).SetString(c.Rates[best])
	return r, true, ok
}

// ConvertPrice turns an SDL price per Akash block into ukiln per Kiln block:
//
//	ukiln = amount × rate(denom) × KilnBlockTime / AkashBlockTime
//
// A price written in ukiln is taken as already per Kiln block.
func (c Config) ConvertPrice(p Coin) (Coin, error) {
	amount, ok := new(big.Rat).SetString(p.Amount)
	if !ok {
		return Coin{}, fmt.Errorf("amount %q is not a decimal", p.Amount)
	}
	r, _, ok := c.rate(p.Denom)
	if !ok {
		return Coin{}, fmt.Errorf("no conversion rate to %s for denom %q", KilnDenom, p.Denom)
	}
	v := new(big.Rat).Mul(amount, r)
	if p.Denom != KilnDenom {
		v.Mul(v, big.NewRat(int64(c.KilnBlockTime), int64(c.AkashBlockTime)))
	}
	return Coin{Denom: KilnDenom, Amount: formatDec(v)}, nil
}

// formatDec prints v with at most 18 decimals (Cosmos Dec precision),
// rounded half away from zero, without trailing zeros.
func formatDec(v *big.Rat) string {
	s := v.FloatString(18)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// plainDecRe is a non-negative decimal as prices are written: digits, perhaps a
// fraction; no sign, exponent, base prefix or digit separator (which big.Rat takes).
var plainDecRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// Ceil returns the least whole number of units at or above c's amount, computed
// exactly (no float), and whether the amount was whole already. A converted price is
// a ceiling, so it rounds up: this is the per-block price an order carries.
func (c Coin) Ceil() (units uint64, whole bool, err error) {
	if !plainDecRe.MatchString(c.Amount) {
		return 0, false, fmt.Errorf("amount %q: not a non-negative decimal", c.Amount)
	}
	r, _ := new(big.Rat).SetString(c.Amount)
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsUint64() {
		return 0, false, fmt.Errorf("amount %q: too large", c.Amount)
	}
	return q.Uint64(), m.Sign() == 0, nil
}
