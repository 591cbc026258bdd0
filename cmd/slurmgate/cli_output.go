package main

// How the CLI talks back: exit codes scripts can rely on, errors that say
// what to do next, JSON for programs and tables for people.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/slurmgate/slurmgate/api/client"
)

// Exit codes of the client commands. run and sbatch --wait exit with the
// job's own code instead, so there a 1, 2 or 3 may also be the job's.
const (
	exitError    = 1   // anything else: the gateway or Slurm failed, a session ended in ERROR
	exitUsage    = 2   // a bad flag, argument, #SBATCH directive or configuration file
	exitRefused  = 3   // a quota or policy refused the request; the message names the limit
	exitAuth     = 4   // not logged in, or the gateway refused the credentials
	exitNotFound = 5   // no such session, image, project, …
	exitNoResult = 125 // run/sbatch --wait: the session ended without an exit code of its own
	exitSignal   = 130 // run/sbatch --wait: interrupted (Ctrl-C), and the session cancelled
)

// exitCodesHelp documents the codes in --help.
const exitCodesHelp = `Exit status:
   0    success
   1    error (the gateway or Slurm failed, a session ended in ERROR)
   2    usage: a bad flag, argument, #SBATCH directive or configuration file
   3    refused by a quota or policy (the message names the limit)
   4    not logged in, or the gateway refused the credentials
   5    not found (session, image, project, …)
   run and sbatch --wait exit with the job's own exit code instead; 125 when
   the session ended without one (cancelled before it started, failed to
   submit, killed by a signal), 130 after Ctrl-C cancelled it.`

// cliError is an error with an exit code and a hint of what to do; main
// prints it and exits with its code.
type cliError struct {
	code int
	msg  string
	hint string
}

func (e *cliError) Error() string {
	if e.hint == "" {
		return e.msg
	}
	return e.msg + "\n  hint: " + e.hint
}

func (e *cliError) ExitCode() int { return e.code }

var _ cli.ExitCoder = (*cliError)(nil)

func usageErrorf(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// apiError turns an error from the API client into one a person can act
// on: the problem's title and detail, the limit that refused it, and a hint.
func apiError(err error, endpoint string) error {
	if err == nil {
		return nil
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return err
	}
	var p *client.Problem
	if !errors.As(err, &p) {
		var ue *url.Error
		var ne net.Error
		if errors.As(err, &ue) || errors.As(err, &ne) {
			return &cliError{code: exitError, msg: fmt.Sprintf("cannot reach the gateway at %s: %v", endpoint, err),
				hint: "check the endpoint (`slurmgate config show`) and that the gateway is up"}
		}
		return &cliError{code: exitError, msg: err.Error()}
	}
	msg := p.Title
	if p.Detail != "" && p.Detail != p.Title {
		msg += ": " + p.Detail
	}
	if p.Field != "" {
		msg += " (field " + p.Field + ")"
	}
	e := &cliError{code: exitError, msg: msg}
	switch {
	case p.Quota != nil:
		q := p.Quota
		e.code = exitRefused
		e.hint = fmt.Sprintf("%s %s allows %d %s, %d in use, %d asked: ask for less, wait for sessions to end (`slurmgate usage`), or ask an admin to raise the limit",
			q.Scope, q.ScopeName, q.Max, q.Limit, q.InUse, q.Requested)
	case p.Status == 401:
		e.code = exitAuth
		e.hint = "log in again: `" + loginCommandHint + "` (and check the clock: signatures expire)"
	case p.Status == 403:
		e.code = exitRefused
		e.hint = "your role does not allow this; ask a domain or project admin"
	case p.Status == 404:
		e.code = exitNotFound
		e.hint = "check the name or id: `slurmgate session ls`, `slurmgate image ls`, `slurmgate preset ls`"
	case p.Status == 400 || p.Status == 422:
		e.code = exitUsage
	case p.Status >= 500:
		e.hint = "the gateway failed; retry, and if it persists give your admin the request id"
	}
	if p.RequestID != "" && p.Status >= 500 {
		e.msg += " [request " + p.RequestID + "]"
	}
	return e
}

var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON for programs instead of text"}

// printJSON writes v as indented JSON to the command's output.
func printJSON(cmd *cli.Command, v any) error {
	enc := json.NewEncoder(cmd.Root().Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows as aligned columns under a header.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// isTerminal reports whether f is a character device, i.e. a person is
// probably watching it.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// orDash shows empty values as "-" so that table columns stay aligned.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// age is a compact "how long ago" for tables.
func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// formatMemory prints MiB as people write it.
func formatMemory(mb int64) string {
	if mb == 0 {
		return "-"
	}
	if mb%1024 == 0 {
		return fmt.Sprintf("%dG", mb/1024)
	}
	return fmt.Sprintf("%dM", mb)
}

func formatGPUs(n int, typ string) string {
	switch {
	case n == 0:
		return "-"
	case typ == "":
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%s:%d", typ, n)
}
