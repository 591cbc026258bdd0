package vfolder

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on names, as Linux file systems have them: a longer name would fail
// deep inside a system call with a less helpful error.
const (
	MaxNameLen = 255  // bytes in one path component
	MaxPathLen = 4096 // bytes in a whole path
)

// PathError says what is wrong with a path a person gave, naming the
// component at fault.
type PathError struct {
	Path      string
	Component string // empty when the fault is the whole path
	Reason    string
}

func (e *PathError) Error() string {
	if e.Component == "" {
		return fmt.Sprintf("path %q: %s", e.Path, e.Reason)
	}
	return fmt.Sprintf("path %q: component %q %s", e.Path, e.Component, e.Reason)
}

// ErrEscapes is returned when a path resolves outside its folder through a
// symbolic link. The name alone cannot say so; only resolving it can.
var ErrEscapes = errors.New("the path leads outside the folder through a symbolic link")

// CleanPath validates a slash-separated path relative to a folder's top and
// returns it in canonical form ("." for the top itself). It refuses, naming
// the component, what could escape the folder or cannot be a Linux file
// name: absolute paths, "..", NUL and other control characters, invalid
// UTF-8 and over-long names. Empty components and "." are dropped, so
// "a//b/./c/" is "a/b/c". Symbolic links are checked when the path is used.
func CleanPath(p string) (string, error) {
	if len(p) > MaxPathLen {
		return "", &PathError{Path: p[:64] + "…", Reason: fmt.Sprintf("is %d bytes long; the limit is %d", len(p), MaxPathLen)}
	}
	if strings.HasPrefix(p, "/") {
		return "", &PathError{Path: p, Reason: "is absolute; give it relative to the folder's top, without a leading /"}
	}
	var out []string
	for c := range strings.SplitSeq(p, "/") {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return "", &PathError{Path: p, Component: c, Reason: "refers to a parent directory; paths stay inside the folder"}
		case len(c) > MaxNameLen:
			return "", &PathError{Path: p, Component: c[:32] + "…", Reason: fmt.Sprintf("is %d bytes long; a name may have at most %d", len(c), MaxNameLen)}
		case !utf8.ValidString(c):
			return "", &PathError{Path: strings.ToValidUTF8(p, "\uFFFD"), Component: strings.ToValidUTF8(c, "\uFFFD"), Reason: "is not valid UTF-8"}
		}
		for _, r := range c {
			if r < 0x20 || r == 0x7f {
				return "", &PathError{Path: p, Component: c, Reason: fmt.Sprintf("contains the control character %U; names may not", r)}
			}
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return ".", nil
	}
	return strings.Join(out, "/"), nil
}

// CleanName validates a single file name (no slashes), e.g. the last part of
// an upload's destination.
func CleanName(name string) error {
	if strings.Contains(name, "/") {
		return &PathError{Path: name, Reason: "must be one name, without /"}
	}
	c, err := CleanPath(name)
	if err != nil {
		return err
	}
	if c == "." {
		return &PathError{Path: name, Reason: "is empty; give a file name"}
	}
	return nil
}
