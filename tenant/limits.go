package tenant

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Limits on the deployment files the tenant reads, so that a file's cost is bounded
// by its size, as sdl bounds an SDL by the nodes it visits.
const (
	// MaxSpecBytes bounds a Kiln spec, an order spec or an SDL file read by Load: the
	// provider's default manifest limit (1 MiB), which a bigger file would not fit.
	MaxSpecBytes = 1 << 20
	// MaxSpecNodes bounds the YAML nodes of a Kiln or order spec, aliases expanded:
	// far above a real spec (tens of nodes) and far below what takes noticeable time.
	MaxSpecNodes = 100_000
	// MaxSpecMapEntries bounds the entries of one YAML mapping (a service's env, a
	// group's attributes). NB: yaml.v3 checks a mapping's keys for duplicates pairwise,
	// so one mapping costs the square of its size: 45,000 env entries took 19.5 s;
	// 1,000 take about a millisecond.
	MaxSpecMapEntries = 1000
)

// ErrSpecTooLarge is returned (wrapped, with the limit and where it is exceeded) for
// a spec over one of the limits above.
var ErrSpecTooLarge = errors.New("spec too large")

// readSpecFile reads a deployment file of at most MaxSpecBytes.
func readSpecFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxSpecBytes {
		return nil, fmt.Errorf("%s: %w: the file is over the limit of %d bytes", path, ErrSpecTooLarge, MaxSpecBytes)
	}
	return b, nil
}

// parseYAMLNode parses one YAML document into its node tree (linear in its size;
// nothing is decoded yet). An empty document gives a nil node.
func parseYAMLNode(b []byte) (*yaml.Node, error) {
	if len(b) > MaxSpecBytes {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrSpecTooLarge, len(b), MaxSpecBytes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if doc.Kind == 0 {
		return nil, nil
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return &doc, nil
}

// checkSpecLimits walks a spec's node tree, following aliases, and refuses one over
// MaxSpecNodes nodes or with a mapping of more than MaxSpecMapEntries entries,
// naming where.
func checkSpecLimits(root *yaml.Node) error {
	budget := MaxSpecNodes
	var walk func(n *yaml.Node, path string, depth int) error
	walk = func(n *yaml.Node, path string, depth int) error {
		if n == nil {
			return nil
		}
		budget--
		if budget < 0 {
			return fmt.Errorf("%w: more than %d YAML nodes (aliases expanded), at %s (line %d)", ErrSpecTooLarge, MaxSpecNodes, pathOr(path), n.Line)
		}
		// NB: yaml.v3 refuses alias chains deeper than this long before; the depth
		// check only keeps a cyclic alias from recursing without end.
		if depth > 10_000 {
			return fmt.Errorf("%w: YAML nested too deep at %s (line %d)", ErrSpecTooLarge, pathOr(path), n.Line)
		}
		switch n.Kind {
		case yaml.AliasNode:
			return walk(n.Alias, path, depth+1)
		case yaml.MappingNode:
			if k := len(n.Content) / 2; k > MaxSpecMapEntries {
				return fmt.Errorf("%s: %w: %d entries, over the limit of %d per mapping (line %d)", pathOr(path), ErrSpecTooLarge, k, MaxSpecMapEntries, n.Line)
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if err := walk(n.Content[i], path, depth+1); err != nil {
					return err
				}
				if err := walk(n.Content[i+1], joinPath(path, key), depth+1); err != nil {
					return err
				}
			}
		default:
			for i, c := range n.Content {
				p := path
				if n.Kind == yaml.SequenceNode {
					p = path + "[" + strconv.Itoa(i) + "]"
				}
				if err := walk(c, p, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(root, "", 0)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func pathOr(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

// decodeSpec decodes a Kiln or order spec into v within the limits, refusing
// unknown fields.
func decodeSpec(b []byte, v any) error {
	root, err := parseYAMLNode(b)
	if err != nil {
		return err
	}
	if root == nil {
		return errors.New("empty spec: want kind, max_price, groups and services")
	}
	if err := checkSpecLimits(root); err != nil {
		return err
	}
	// NB: decode the bytes, not the node: only yaml.Decoder refuses unknown fields.
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}
