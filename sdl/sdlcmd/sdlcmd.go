// Package sdlcmd provides the `kiln sdl` command: validate and show Akash
// SDL files.
//
// cmd/kiln wires it with root.AddCommand(sdlcmd.NewCommand()) and maps the
// error of root.Execute to the exit status:
//
//	if err := root.Execute(); err != nil {
//		var ee *sdlcmd.ExitError
//		if errors.As(err, &ee) {
//			os.Exit(ee.Code) // 1: a file is invalid; 2: usage error
//		}
//		os.Exit(2) // cobra's own usage errors (unknown flag, ...)
//	}
//
// The commands have already printed what the user needs when they return
// an *ExitError with Code 1; cobra adds a one-line "Error: ..." summary.
package sdlcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/sdl"
)

// Exit codes.
const (
	ExitInvalid = 1 // at least one SDL file is invalid or unreadable
	ExitUsage   = 2 // bad arguments or flags
)

// ExitError carries the exit status a command wants the process to end with.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func usageErr(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// NewCommand returns the `sdl` command with its validate and show
// subcommands. Output goes to cmd.OutOrStdout, warnings and problems to
// cmd.ErrOrStderr.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sdl",
		Short: "Validate and inspect Akash SDL deployment files",
		Long: "Akash SDL 2.0 and 2.1 files run on Kiln unchanged: `kiln sdl validate` checks them as\n" +
			"Akash does, `kiln sdl show` prints the Kiln order groups and manifest they become.",
	}
	cmd.AddCommand(newValidateCommand(), newShowCommand())
	return cmd
}

func outputFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "output", "o", "text", "output format: text or json")
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return usageErr("--output must be text or json (got %q)", o)
	}
	return nil
}

type fileReport struct {
	File     string        `json:"file"`
	Valid    bool          `json:"valid"`
	Errors   []string      `json:"errors,omitempty"`
	Warnings []sdl.Warning `json:"warnings,omitempty"`
}

func newValidateCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check SDL files; print OK or every problem per file",
		Long: "Check each SDL file as Akash would. Prints \"FILE: OK\" or the file's problems, each with\n" +
			"line, column, field path, value and what is allowed. Warnings (ignored keys, ...) go to\n" +
			"stderr. Exit status: 0 all valid, 1 some file invalid or unreadable, 2 usage error.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("validate needs at least one FILE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cmd.SilenceUsage = true
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var reports []fileReport
			invalid := 0
			for _, f := range args {
				res, err := sdl.ParseFile(f)
				r := fileReport{File: f, Valid: err == nil}
				if res != nil {
					r.Warnings = res.Warnings
				}
				if err != nil {
					invalid++
					r.Errors = errorLines(err)
				}
				reports = append(reports, r)
				if output == "text" {
					printWarnings(errOut, r.Warnings)
					if r.Valid {
						fmt.Fprintf(out, "%s: OK\n", f)
					} else {
						fmt.Fprintf(out, "%s: invalid (%d problems)\n", f, len(r.Errors))
						for _, e := range r.Errors {
							fmt.Fprintf(out, "  %s\n", e)
						}
					}
				}
			}
			if output == "json" {
				if err := writeJSON(out, reports); err != nil {
					return err
				}
			}
			if invalid > 0 {
				return &ExitError{Code: ExitInvalid, Err: fmt.Errorf("%d of %d SDL files invalid", invalid, len(args))}
			}
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}

func newShowCommand() *cobra.Command {
	var output string
	var showSecrets bool
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Print the Kiln order groups and manifest an SDL file becomes",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("show needs exactly one FILE (got %d)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cmd.SilenceUsage = true
			res, err := Load(cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			if !showSecrets {
				redact(res)
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			printResult(cmd.OutOrStdout(), args[0], res)
			return nil
		},
	}
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "print registry passwords instead of <redacted>")
	return cmd
}

// Load parses an SDL file for a command such as `kiln deploy`: it prints
// warnings, and on failure every problem, to errOut, and returns an
// *ExitError with ExitInvalid.
func Load(errOut io.Writer, path string) (*sdl.Result, error) {
	res, err := sdl.ParseFile(path)
	if res != nil {
		printWarnings(errOut, res.Warnings)
	}
	if err != nil && !errors.Is(err, sdl.ErrInvalid) {
		// Not a problem of the SDL (the file could not be read, say): one line.
		return nil, &ExitError{Code: ExitInvalid, Err: fmt.Errorf("%s: %w", path, err)}
	}
	if err != nil {
		for _, e := range errorLines(err) {
			fmt.Fprintln(errOut, e)
		}
		return nil, &ExitError{Code: ExitInvalid, Err: fmt.Errorf("%s: invalid SDL", path)}
	}
	return res, nil
}

func errorLines(err error) []string {
	var list sdl.ErrorList
	if errors.As(err, &list) {
		lines := make([]string, len(list))
		for i, e := range list {
			lines[i] = e.Error()
		}
		return lines
	}
	return []string{err.Error()}
}

func printWarnings(w io.Writer, warns []sdl.Warning) {
	for _, wa := range warns {
		fmt.Fprintln(w, "warning: "+wa.String())
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func redact(res *sdl.Result) {
	for gi := range res.Manifest.Groups {
		for si := range res.Manifest.Groups[gi].Services {
			if c := res.Manifest.Groups[gi].Services[si].Credentials; c != nil && c.Password != "" {
				cc := *c
				cc.Password = "<redacted>"
				res.Manifest.Groups[gi].Services[si].Credentials = &cc
			}
		}
	}
}

func printResult(w io.Writer, file string, res *sdl.Result) {
	fmt.Fprintf(w, "%s: SDL %s, %d order group(s)\n", file, res.Version, len(res.Groups))
	for gi, g := range res.Groups {
		attrs := "any provider"
		if len(g.Requirements.Attributes) > 0 {
			var kv []string
			for _, a := range g.Requirements.Attributes {
				kv = append(kv, a.Key+"="+a.Value)
			}
			attrs = strings.Join(kv, ", ")
		}
		if n := len(g.Requirements.SignedBy.AllOf) + len(g.Requirements.SignedBy.AnyOf); n > 0 {
			attrs += fmt.Sprintf(" (signed by %d auditor(s))", n)
		}
		fmt.Fprintf(w, "\ngroup %s: %s\n", g.Name, attrs)
		for _, u := range g.Resources {
			fmt.Fprintf(w, "  unit %d × %d: cpu %s, memory %s, storage %s", u.ID, u.Count, cpu(u.CPUMilli), fmtBytes(u.MemoryBytes), storage(u.Storage))
			if u.GPU.Units > 0 {
				var models []string
				for _, m := range u.GPU.Models {
					s := m.Vendor + " " + m.Model
					if m.RAM != "" {
						s += " " + m.RAM
					}
					if m.Interface != "" {
						s += " " + m.Interface
					}
					models = append(models, s)
				}
				fmt.Fprintf(w, ", gpu %d × (%s)", u.GPU.Units, strings.Join(models, " | "))
			}
			fmt.Fprintf(w, "\n    price %s (SDL: %s %s per Akash block)\n", kilnPrice(u.Price), u.SourcePrice.Amount, u.SourcePrice.Denom)
		}
		for _, s := range res.Manifest.Groups[gi].Services {
			fmt.Fprintf(w, "  service %s × %d: %s (unit %d)\n", s.Name, s.Count, s.Image, s.Resources.ID)
			for _, x := range s.Expose {
				to := "inside the deployment"
				switch {
				case x.Global && x.IP != "":
					to = "global on IP endpoint " + x.IP
				case x.Global:
					to = "global"
				case x.Service != "":
					to = "to service " + x.Service
				}
				ext := x.ExternalPort
				if ext == 0 {
					ext = x.Port
				}
				fmt.Fprintf(w, "    expose %s %d as %d %s\n", strings.ToLower(x.Proto), x.Port, ext, to)
			}
		}
	}
}

// kilnPrice prints a converted price as the whole ukiln per block an order carries:
// the exact conversion rounded up, said so when it was not whole. Its 18 decimals
// (sdl.ConvertPrice) are for the JSON output, not for people.
func kilnPrice(p sdl.Coin) string {
	units, whole, err := p.Ceil()
	if err != nil {
		return p.Amount + " " + p.Denom + " per Kiln block"
	}
	if whole {
		return fmt.Sprintf("%d %s per Kiln block", units, p.Denom)
	}
	return fmt.Sprintf("%d %s per Kiln block, rounded up", units, p.Denom)
}

func cpu(milli uint64) string {
	if milli%1000 == 0 {
		return fmt.Sprint(milli / 1000)
	}
	return fmt.Sprintf("%dm", milli)
}

func fmtBytes(b uint64) string {
	for _, u := range []struct {
		s string
		n uint64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if b >= u.n && b%u.n == 0 {
			return fmt.Sprintf("%d%s", b/u.n, u.s)
		}
	}
	return fmt.Sprint(b)
}

func storage(vols []sdl.Storage) string {
	var parts []string
	for _, v := range vols {
		s := v.Name + " " + fmtBytes(v.Bytes)
		if v.Class != "" {
			s += " " + v.Class
		}
		if v.Persistent {
			s += " persistent"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " + ")
}
