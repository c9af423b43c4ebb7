package sdl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse reads one SDL document with DefaultConfig. See Config.Parse.
func Parse(data []byte) (*Result, error) {
	return DefaultConfig().Parse("", data)
}

// ParseFile reads and parses the SDL file at path with DefaultConfig.
// Errors and warnings carry the path.
func ParseFile(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read SDL: %w", err)
	}
	return DefaultConfig().Parse(path, data)
}

// Parse reads one SDL document (file names errors and warnings; it may be
// empty). It returns a non-nil Result whose Warnings are always set. If the
// document is one that Akash would refuse, err is an ErrorList holding every
// problem found (errors.Is(err, ErrInvalid) holds) and Groups and Manifest
// are empty. Parse never panics and its work is bounded by the input size.
func (c Config) Parse(file string, data []byte) (*Result, error) {
	res := &Result{}
	if err := c.Validate(); err != nil {
		return res, err
	}
	w := newWalker(file)
	p := &parser{w: w, cfg: c}
	p.run(data, res)
	sortByLine(w.errs, func(e *Error) (int, int) { return e.Line, e.Column })
	sortByLine(w.warns, func(e Warning) (int, int) { return e.Line, e.Column })
	res.Warnings = w.warns
	if len(w.errs) > 0 {
		res.Groups, res.Manifest = nil, Manifest{}
		return res, w.errs
	}
	return res, nil
}

type parser struct {
	w   *walker
	cfg Config
	d   doc
	// checked marks compute profiles whose limits were checked.
	checked map[string]bool
}

func (p *parser) run(data []byte, res *Result) {
	w := p.w
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			w.errAt(nil, "", "", "empty document: an SDL needs version, services, profiles and deployment")
			return
		}
		w.yamlError(err)
		return
	}
	// Akash unmarshals only the first document of the stream.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil || !errors.Is(err, io.EOF) {
		w.warnAt(nil, "", "only the first YAML document is read (as by Akash); the rest of the file is ignored")
	}
	top := resolve(&root)
	if top.Kind == yaml.DocumentNode && len(top.Content) > 0 {
		top = resolve(top.Content[0])
	}
	if top.Kind != yaml.MappingNode {
		w.errAt(top, "", scalarValue(top), "an SDL must be a mapping with version, services, profiles and deployment, not %s", kindName(top))
		return
	}
	if !p.version(top, res) {
		return
	}
	p.d = doc{
		services:   map[string]*service{},
		compute:    map[string]*computeProfile{},
		placement:  map[string]*placementProfile{},
		deployment: map[string]map[string]*svcDeployment{},
		deplNodes:  map[string]*yaml.Node{},
		endpoints:  map[string]*endpointDecl{},
		version:    res.Version,
		v21:        p.d.v21,
	}
	w.decodeTop(top, &p.d)
	if w.budget <= 0 {
		return
	}
	groups, manifest := p.build()
	if len(w.errs) > 0 {
		return
	}
	res.Groups, res.Manifest = groups, manifest
	res.Reclamation = p.d.reclaim
}

// sortByLine orders problems by position; those without one go last.
func sortByLine[T any](s []T, pos func(T) (int, int)) {
	sort.SliceStable(s, func(i, j int) bool {
		li, ci := pos(s[i])
		lj, cj := pos(s[j])
		if li == 0 || lj == 0 {
			return lj == 0 && li != 0
		}
		if li != lj {
			return li < lj
		}
		return ci < cj
	})
}

// yamlLineRe finds "line N:" in yaml.v3 messages.
var yamlLineRe = regexp.MustCompile(`line (\d+):?\s*`)

// yamlError records a syntax error from yaml.v3 with its line.
func (w *walker) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: w.file, Msg: "invalid YAML: " + msg}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Column = 1
		e.Msg = "invalid YAML: " + strings.Replace(msg, m[0], "", 1)
	}
	w.errs = append(w.errs, e)
}

// version reads the version key the way Akash does (semver, tolerant of
// "2" and "v2.0") and accepts 2.0 and 2.1.
func (p *parser) version(top *yaml.Node, res *Result) bool {
	var vk, vv *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if resolve(top.Content[i]).Value == "version" {
			vk, vv = top.Content[i], resolve(top.Content[i+1])
			break
		}
	}
	if vk == nil {
		p.w.errAt(top, "version", "", `no version found; add version: "2.0" (or "2.1")`)
		return false
	}
	s := scalarValue(vv)
	res.Version = s
	major, minor, patch, pre, ok := parseTolerantSemver(s)
	switch {
	case !ok:
		p.w.errAt(vv, "version", s, `must be a version number such as "2.0" or "2.1"`)
		return false
	case major == 2 && minor == 0 && patch == 0 && pre == "":
		return true
	case major == 2 && minor == 1 && pre == "":
		p.d.v21 = true
		return true
	default:
		p.w.errAt(vv, "version", s, `unsupported SDL version; supported: "2.0", "2.1"`)
		return false
	}
}

// parseTolerantSemver mirrors blang/semver's ParseTolerant for the parts
// that matter here: trims spaces and a "v", pads "2" to "2.0.0", strips
// leading zeros.
func parseTolerantSemver(s string) (major, minor, patch uint64, pre string, ok bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if s == "" {
		return 0, 0, 0, "", false
	}
	if i := strings.IndexAny(s, "+"); i >= 0 {
		s = s[:i] // build metadata does not count
	}
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 3 && strings.Contains(parts[len(parts)-1], "-") {
		return 0, 0, 0, "", false
	}
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	if i := strings.Index(parts[2], "-"); i >= 0 {
		parts[2], pre = parts[2][:i], parts[2][i+1:]
		if pre == "" {
			return 0, 0, 0, "", false
		}
	}
	var nums [3]uint64
	for i, part := range parts {
		if part == "" || strings.Trim(part, "0123456789") != "" {
			return 0, 0, 0, "", false
		}
		n, err := strconv.ParseUint(part, 10, 64)
		if err != nil {
			return 0, 0, 0, "", false
		}
		nums[i] = n
	}
	return nums[0], nums[1], nums[2], pre, true
}
