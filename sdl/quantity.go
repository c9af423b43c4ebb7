package sdl

import (
	"regexp"

	"github.com/kiln-network/kiln/quantity"
)

// Size units, as in Akash (quantity).
const (
	unitMi = quantity.Mi
	unitGi = quantity.Gi
	unitTi = quantity.Ti
)

// decRe is what cosmos-sdk's LegacyNewDecFromStr accepts: an optional sign,
// digits, and at most 18 decimals.
var decRe = regexp.MustCompile(`^[-+]?[0-9]+(\.[0-9]{1,18})?$`)

// denomRe is cosmos-sdk's denomination syntax.
var denomRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9/:._-]{2,127}$`)

// attrKeyRe is Akash's attribute key syntax, allowing a trailing wildcard.
var attrKeyRe = regexp.MustCompile(`^([a-zA-Z][\w/.\-]{1,126}[\w*]?)$`)
