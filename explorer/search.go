package explorer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kiln-network/kiln/types"
)

// MaxSearchLen bounds a search term: the longest thing one names is a 64-digit hash
// with a "block:" prefix; anything far longer is a mistake or an attack.
const MaxSearchLen = 128

// Kinds of search targets.
const (
	KindNumber  = "number"  // a bare positive integer: a height, an order or a lease id
	KindHeight  = "block"   // block:N or height:N
	KindOrder   = "order"   // order:N
	KindLease   = "lease"   // lease:N
	KindHash    = "hash"    // 64 hex digits: a tx hash or a block hash
	KindAddress = "address" // kiln1...: an account, maybe a provider
)

// Target is what a search term names.
type Target struct {
	Kind string `json:"kind"`
	// ID is the height or the order/lease id for the numeric kinds.
	ID uint64 `json:"id,string,omitempty"`
	// Hash is upper-case hex for KindHash.
	Hash string `json:"hash,omitempty"`
	// Address is the bech32 address for KindAddress.
	Address string `json:"address,omitempty"`
}

// ErrBadSearch is matched by every error ParseSearch returns.
var ErrBadSearch = errors.New("bad search")

// SearchError says what is wrong with a search term; its message never holds the term
// itself beyond a short quoted prefix, so it is safe to show.
type SearchError struct{ Reason string }

func (e *SearchError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrBadSearch) true.
func (e *SearchError) Is(target error) bool { return target == ErrBadSearch }

func badSearch(format string, args ...any) error {
	return &SearchError{Reason: fmt.Sprintf(format, args...)}
}

// quoteShort quotes at most the first 32 bytes of s (valid UTF-8 assumed).
func quoteShort(s string) string {
	if len(s) > 32 {
		cut := 32
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

// ParseSearch reads a search term: a height, order or lease id (bare, or prefixed
// block:, height:, order:, lease:), a 64-digit hex hash (tx or block), or a kiln1
// address. Surrounding spaces are ignored. Anything else, an empty term, one over
// MaxSearchLen bytes or not valid UTF-8, is an error matching ErrBadSearch.
func ParseSearch(q string) (Target, error) {
	if len(q) > MaxSearchLen {
		return Target{}, badSearch("search term is %d bytes long; the longest thing one can search for is %d", len(q), MaxSearchLen)
	}
	if !utf8.ValidString(q) {
		return Target{}, badSearch("search term is not valid UTF-8")
	}
	q = strings.TrimSpace(q)
	if q == "" {
		return Target{}, badSearch("empty search: give a height, an order or lease id, a tx or block hash, or a kiln1 address")
	}
	kind := KindNumber
	if prefix, rest, ok := strings.Cut(q, ":"); ok {
		switch strings.ToLower(prefix) {
		case "block", "height":
			kind = KindHeight
		case "order":
			kind = KindOrder
		case "lease":
			kind = KindLease
		default:
			return Target{}, badSearch("unknown search prefix %s: use block:, order: or lease:", quoteShort(prefix))
		}
		q = strings.TrimSpace(rest)
	}
	if q != "" && q[0] >= '0' && q[0] <= '9' && len(q) <= 20 && allDigits(q) {
		id, err := strconv.ParseUint(q, 10, 64)
		if err != nil || id == 0 {
			return Target{}, badSearch("%s is not a positive 64-bit number", quoteShort(q))
		}
		return Target{Kind: kind, ID: id}, nil
	}
	if kind != KindNumber {
		return Target{}, badSearch("%s after %s: is not a positive number", quoteShort(q), kind)
	}
	if len(q) == 64 && isHex(q) {
		return Target{Kind: KindHash, Hash: strings.ToUpper(q)}, nil
	}
	if strings.HasPrefix(strings.ToLower(q), types.Bech32Prefix+"1") {
		a, err := types.ParseAddress(strings.ToLower(q))
		if err != nil {
			return Target{}, badSearch("not a valid address: %v", err)
		}
		return Target{Kind: KindAddress, Address: a.String()}, nil
	}
	return Target{}, badSearch("%s is not a height, an order or lease id, a 64-digit hash or a %s1 address", quoteShort(q), types.Bech32Prefix)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// String writes t back as a search term that ParseSearch reads as t.
func (t Target) String() string {
	switch t.Kind {
	case KindNumber:
		return strconv.FormatUint(t.ID, 10)
	case KindHeight, KindOrder, KindLease:
		return t.Kind + ":" + strconv.FormatUint(t.ID, 10)
	case KindHash:
		return t.Hash
	case KindAddress:
		return t.Address
	}
	return ""
}
