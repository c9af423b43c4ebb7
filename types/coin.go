package types

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// NativeDenom is the staking and fee denomination: 1 KILN = 10^6 ukiln.
const NativeDenom = "ukiln"

// denomRe is the Cosmos SDK denom rule: a letter, then 2–127 of letters, digits, / : . _ -.
var denomRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9/:._-]{2,127}$`)

// ValidateDenom returns an error naming what is wrong with d.
func ValidateDenom(d string) error {
	if !denomRe.MatchString(d) {
		return fmt.Errorf("invalid denom %q: must be a letter then 2-127 of [a-zA-Z0-9/:._-]", d)
	}
	return nil
}

// Coin is an amount of one denomination. Amounts are uint64 with checked arithmetic:
// 1.8×10^19 base units is far above any supply Kiln mints, and overflow is refused, never
// wrapped.
type Coin struct {
	Denom  string `json:"denom"`
	Amount uint64 `json:"amount,string"`
}

// NewCoin returns a coin.
func NewCoin(denom string, amount uint64) Coin { return Coin{Denom: denom, Amount: amount} }

// String is the Cosmos form, e.g. 1000ukiln.
func (c Coin) String() string { return strconv.FormatUint(c.Amount, 10) + c.Denom }

var coinRe = regexp.MustCompile(`^([0-9]+)([a-zA-Z][a-zA-Z0-9/:._-]{2,127})$`)

// ParseCoin parses "1000ukiln". Amounts over uint64 are refused with a clear error.
func ParseCoin(s string) (Coin, error) {
	m := coinRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Coin{}, fmt.Errorf("invalid coin %q: want AMOUNTDENOM like 1000ukiln", s)
	}
	amt, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return Coin{}, fmt.Errorf("invalid coin %q: amount out of range (max %d)", s, uint64(1<<64-1))
	}
	return Coin{Denom: m[2], Amount: amt}, nil
}

// Validate checks the denom and that the amount is positive.
func (c Coin) Validate() error {
	if err := ValidateDenom(c.Denom); err != nil {
		return err
	}
	if c.Amount == 0 {
		return fmt.Errorf("amount of %s must be > 0", c.Denom)
	}
	return nil
}

// Coins is a set of coins sorted by denom with no duplicates and no zero amounts.
type Coins []Coin

// ParseCoins parses "10ukiln,5uusd".
func ParseCoins(s string) (Coins, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var cs Coins
	for _, part := range strings.Split(s, ",") {
		c, err := ParseCoin(part)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Denom < cs[j].Denom })
	return cs, cs.Validate()
}

// Validate checks sorting, uniqueness and each coin.
func (cs Coins) Validate() error {
	for i, c := range cs {
		if err := c.Validate(); err != nil {
			return err
		}
		if i > 0 && cs[i-1].Denom >= c.Denom {
			return fmt.Errorf("coins not sorted or duplicate denom %q", c.Denom)
		}
	}
	return nil
}

// String joins the coins with commas.
func (cs Coins) String() string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return strings.Join(parts, ",")
}

// AddUint64 returns a+b or false if it overflows.
func AddUint64(a, b uint64) (uint64, bool) {
	s, carry := bits.Add64(a, b, 0)
	return s, carry == 0
}

// MulDiv returns a*num/den rounded down, computed in 128 bits so it never overflows
// for den > 0 and num <= den.
func MulDiv(a, num, den uint64) uint64 {
	hi, lo := bits.Mul64(a, num)
	q, _ := bits.Div64(hi, lo, den)
	return q
}

// MarshalJSON keeps an empty set as [] rather than null.
func (cs Coins) MarshalJSON() ([]byte, error) {
	if cs == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]Coin(cs))
}

// SortedCoins returns the non-zero amounts of m as Coins, sorted by denom.
func SortedCoins(m map[string]uint64) Coins {
	var cs Coins
	for d, a := range m {
		if a > 0 {
			cs = append(cs, NewCoin(d, a))
		}
	}
	SortCoins(cs)
	return cs
}

// SortCoins sorts cs by denom in place.
func SortCoins(cs Coins) { sort.Slice(cs, func(i, j int) bool { return cs[i].Denom < cs[j].Denom }) }
