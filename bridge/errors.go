package bridge

import (
	"errors"
	"fmt"
)

// Kind classifies a domain error; the API maps each kind to one HTTP status.
type Kind int

const (
	KindInternal    Kind = iota
	KindInvalid          // the request is malformed or violates a rule (400/422)
	KindNotFound         // no such thing, or the actor may not know it exists (404)
	KindForbidden        // the actor may see it but not do this (403)
	KindConflict         // it exists already, or its state forbids the change (409)
	KindQuota            // a policy limit refuses it (403 with the limit named)
	KindUnavailable      // Slurm or another dependency is down (503)
)

// Error is a domain error with a message meant for the person who asked.
type Error struct {
	Kind    Kind
	Message string
	// Field names the request field at fault, for KindInvalid.
	Field string
	// Quota details, for KindQuota.
	Quota *QuotaExceeded
	// Err is the underlying cause, if any (not shown to users).
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// QuotaExceeded names the limit that refused a request, the amount asked and
// what is already in use, so the user can act on it.
type QuotaExceeded struct {
	Scope     string `json:"scope"`      // "user", "project" or "domain"
	ScopeName string `json:"scope_name"` // e.g. "acme/vision"
	Limit     string `json:"limit"`      // e.g. "gpus", "max_concurrent_sessions"
	Max       int64  `json:"max"`
	InUse     int64  `json:"in_use"`
	Requested int64  `json:"requested"`
}

// KindOf returns err's Kind, KindInternal for errors not from this package.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

func invalid(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

func notFound(what string, id any) *Error {
	return &Error{Kind: KindNotFound, Message: fmt.Sprintf("%s %v not found", what, id)}
}

func forbidden(format string, args ...any) *Error {
	return &Error{Kind: KindForbidden, Message: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *Error {
	return &Error{Kind: KindConflict, Message: fmt.Sprintf(format, args...)}
}
