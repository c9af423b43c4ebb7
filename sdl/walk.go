package sdl

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// walker reads a yaml.Node tree by hand, so that every error and warning
// carries a line, a column and a field path, and so that all problems of a
// file are reported rather than the first one (yaml.v3's Decode stops at
// the first). Scalars are still decoded with yaml.v3 so that they mean what
// they mean to Akash's parser.
type walker struct {
	file  string
	errs  ErrorList
	warns []Warning
	// budget bounds the nodes visited, so that alias bombs
	// (a: &a [*b, *b, ...]) cannot make a small file expensive.
	budget int
}

// maxNodes is far above any real SDL (the largest corpus file has a few
// hundred nodes) and far below what takes noticeable time.
const maxNodes = 200000

func newWalker(file string) *walker { return &walker{file: file, budget: maxNodes} }

func (w *walker) errAt(n *yaml.Node, path, value, format string, args ...any) {
	e := &Error{File: w.file, Path: path, Value: value, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	w.errs = append(w.errs, e)
}

func (w *walker) warnAt(n *yaml.Node, path, format string, args ...any) {
	wa := Warning{File: w.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		wa.Line, wa.Column = n.Line, n.Column
	}
	w.warns = append(w.warns, wa)
}

func (w *walker) unknown(k *yaml.Node, path string) {
	w.warnAt(k, path, "unknown key %q ignored (Akash ignores it too)", k.Value)
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return "a scalar"
	}
	return "an unsupported node"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// spend takes cost nodes from the budget and reports whether to continue.
func (w *walker) spend(n *yaml.Node, path string, cost int) bool {
	if w.budget <= 0 {
		return false
	}
	w.budget -= cost
	if w.budget <= 0 {
		w.errAt(n, path, "", "document too complex (more than %d nodes after expanding aliases)", maxNodes)
		return false
	}
	return true
}

type kv struct {
	key   string
	k, v  *yaml.Node
	merge bool
}

// pairs returns the entries of a mapping, with merge keys (<<) expanded the
// way yaml.v3 does (explicit keys win) and duplicate keys reported. A null
// node is an empty mapping. ok is false if n is not a mapping.
func (w *walker) pairs(n *yaml.Node, path string) (out []kv, ok bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		w.errAt(n, path, scalarValue(n), "must be a mapping, not %s", kindName(n))
		return nil, false
	}
	if !w.spend(n, path, 1+len(n.Content)/2) {
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.errAt(k, path, "", "mapping keys must be scalars, not %s", kindName(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			w.errAt(k, join(path, k.Value), "", "mapping key %q already defined at line %d", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, kv{key: k.Value, k: k, v: v})
	}
	for _, m := range merges {
		m = resolve(m)
		var srcs []*yaml.Node
		switch {
		case m != nil && m.Kind == yaml.MappingNode:
			srcs = []*yaml.Node{m}
		case m != nil && m.Kind == yaml.SequenceNode:
			srcs = m.Content
		default:
			w.errAt(m, path, "", "merge key << must point at a mapping or a list of mappings")
			continue
		}
		for _, s := range srcs {
			sub, ok := w.pairs(s, path)
			if !ok {
				continue
			}
			for _, p := range sub {
				if _, dup := seen[p.key]; dup {
					continue
				}
				seen[p.key] = p.k
				p.merge = true
				out = append(out, p)
			}
		}
	}
	return out, true
}

// items returns the elements of a sequence; null is empty.
func (w *walker) items(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		w.errAt(n, path, scalarValue(n), "must be a list, not %s", kindName(n))
		return nil, false
	}
	if !w.spend(n, path, 1+len(n.Content)) {
		return nil, false
	}
	return n.Content, true
}

func scalarValue(n *yaml.Node) string {
	n = resolve(n)
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		return n.Value
	}
	return ""
}

// decodeErr turns a yaml.v3 type error into a short message.
func decodeErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.TrimSpace(s)
	if i := strings.Index(s, ": "); strings.HasPrefix(s, "line ") && i > 0 {
		s = s[i+2:]
	}
	return s
}

// str decodes a string scalar; null is "".
func (w *walker) str(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		w.errAt(n, path, "", "must be a string, not %s", kindName(n))
		return "", false
	}
	var s string
	if err := n.Decode(&s); err != nil {
		w.errAt(n, path, n.Value, "must be a string: %s", decodeErr(err))
		return "", false
	}
	return s, true
}

// strs decodes a list of strings; null is nil.
func (w *walker) strs(n *yaml.Node, path string) ([]string, bool) {
	items, ok := w.items(n, path)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		s, ok2 := w.str(it, path+"["+strconv.Itoa(i)+"]")
		ok = ok && ok2
		out = append(out, s)
	}
	if len(out) == 0 {
		out = nil
	}
	return out, ok
}

// uint32 decodes an unsigned 32-bit integer as yaml.v3 does; null is 0.
func (w *walker) uint32(n *yaml.Node, path, help string) (uint32, bool) {
	n = resolve(n)
	if isNull(n) {
		return 0, true
	}
	var v uint32
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
		w.errAt(n, path, scalarValue(n), "must be %s", help)
		return 0, false
	}
	return v, true
}

// bool decodes a boolean as yaml.v3 does (true/false, and YAML 1.1's
// yes/no/on/off); null is false.
func (w *walker) bool(n *yaml.Node, path string) (bool, bool) {
	n = resolve(n)
	if isNull(n) {
		return false, true
	}
	var v bool
	if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
		w.errAt(n, path, scalarValue(n), "must be true or false")
		return false, false
	}
	return v, true
}
