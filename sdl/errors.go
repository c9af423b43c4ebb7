package sdl

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every error that Parse returns for an
// SDL file that Akash would refuse.
var ErrInvalid = errors.New("invalid SDL")

// Error is one problem in an SDL file. Line and Column are 1-based and 0 when
// unknown.
type Error struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	// Path is the field, e.g. profiles.compute.vllm.resources.gpu.units.
	Path string `json:"path,omitempty"`
	// Value is the offending value as written, if any.
	Value string `json:"value,omitempty"`
	// Msg says what is wrong and what is allowed.
	Msg string `json:"message"`
}

// Error formats as "file:line:col: path: msg (got value)".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Column)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Value != "" {
		fmt.Fprintf(&b, " (got %q)", e.Value)
	}
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// ErrorList is every problem found in one SDL file, in file order.
type ErrorList []*Error

// Error joins the errors one per line.
func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Is reports whether target is ErrInvalid.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// Warning is something accepted but probably not what the author meant, such
// as a key that Akash ignores.
type Warning struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Path   string `json:"path,omitempty"`
	Msg    string `json:"message"`
}

// String formats as "file:line:col: path: msg".
func (w Warning) String() string {
	e := Error{File: w.File, Line: w.Line, Column: w.Column, Path: w.Path, Msg: w.Msg}
	return e.Error()
}
