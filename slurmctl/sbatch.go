package slurmctl

import (
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// A DirectiveError is an sbatch option Slurmgate cannot accept, or a batch
// script sbatch itself would refuse. It matches [ErrInvalidRequest] with
// errors.Is, so callers can treat every parse failure as the client's.
type DirectiveError struct {
	// Line is the 1-based line of the script; 0 when the option came from a
	// command line rather than a script.
	Line int
	// Directive is the option as written ("--array=1-10", "-t 5"); empty for
	// problems with the script as a whole.
	Directive string
	Err       error
}

func (e *DirectiveError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
		if e.Directive != "" {
			b.WriteString("#SBATCH ")
		}
	}
	if e.Directive != "" {
		b.WriteString(e.Directive)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *DirectiveError) Unwrap() error { return e.Err }

// Is reports every DirectiveError as an invalid request.
func (e *DirectiveError) Is(target error) bool { return target == ErrInvalidRequest }

// A BatchParser reads sbatch options from batch scripts and command lines
// into a [JobSpec]. The zero value is ready to use.
type BatchParser struct {
	// Now returns the instant that relative --begin values ("now+1hour",
	// "16:00", "tomorrow") count from; its location is the time zone they are
	// read in, as sbatch reads them in the submitting shell's. Nil means
	// time.Now.
	Now func() time.Time
}

// ParseBatchScript reads the #SBATCH directives of script with a
// [BatchParser] on the system clock.
func ParseBatchScript(script string) (JobSpec, error) {
	return BatchParser{}.ParseScript(script)
}

// ApplyOption applies one sbatch command-line option on top of spec, with a
// [BatchParser] on the system clock.
func ApplyOption(spec *JobSpec, name, value string) error {
	return BatchParser{}.ApplyOption(spec, name, value)
}

// ParseScript reads the #SBATCH directives of script into a JobSpec whose
// Script is the whole script.
//
// Directives are read as sbatch 22.05 reads them: only lines that begin with
// "#SBATCH" in the first column count, and reading stops at the first line
// that is neither blank nor a comment. A directive line splits into words at
// white space; single or double quotes group words, a backslash takes the
// next character literally (except white space, which still ends the word,
// as in sbatch), and an unquoted "#" ends the line, even inside a word.
// Options take the forms --name=value, --name value, -n value and -nvalue;
// single-letter options without a value may be grouped (-Hc2), unambiguous
// abbreviations of long names are accepted as getopt accepts them, and a
// later option overrides an earlier one. A value must be on the same line as
// its option.
//
// Supported options: -A/--account, -b/--begin, -D/--chdir (absolute paths
// only: there is no submission directory to resolve against), --comment,
// -C/--constraint, -c/--cpus-per-task, -d/--dependency, -e/--error,
// --exclusive (whole nodes), --export, -G/--gpus, --gpus-per-node, --gres,
// -H/--hold, -J/--job-name, --mem, --mem-per-cpu, -N/--nodes, -n/--ntasks,
// -o/--output, -p/--partition, -q/--qos and -t/--time. Every other option,
// job arrays and heterogeneous jobs included, is an error rather than being
// dropped: a job that silently lost part of its request would run wrong.
//
// All problems are reported at once, each as a *DirectiveError naming its
// line; errors.As finds the first.
func (p BatchParser) ParseScript(script string) (JobSpec, error) {
	if err := checkScript(script); err != nil {
		return JobSpec{}, err
	}
	spec := JobSpec{Script: script}
	var errs []error
	// sbatch refuses --mem together with --mem-per-cpu in one script rather
	// than letting the later win, because both look deliberate.
	memLine := map[string]int{}
	lineNo := 0
	for line := range strings.SplitSeq(script, "\n") {
		lineNo++
		rest, ok := strings.CutPrefix(line, "#SBATCH")
		if !ok {
			if isCommandLine(line) {
				break
			}
			continue
		}
		uses, err := readDirective(rest)
		for _, u := range uses {
			if other, ok := memExclusive[u.opt.long]; ok {
				if l, set := memLine[other]; set {
					errs = append(errs, &DirectiveError{Line: lineNo, Directive: u.directive,
						Err: fmt.Errorf("--%s and --%s are mutually exclusive (line %d sets --%s)", u.opt.long, other, l, other)})
					continue
				}
				memLine[u.opt.long] = lineNo
			}
			if err := u.opt.set(p, &spec, u.value); err != nil {
				errs = append(errs, &DirectiveError{Line: lineNo, Directive: u.directive, Err: err})
			}
		}
		if err != nil {
			err.Line = lineNo
			errs = append(errs, err)
		}
	}
	switch len(errs) {
	case 0:
		return spec, nil
	case 1:
		return JobSpec{}, errs[0]
	}
	return JobSpec{}, errors.Join(errs...)
}

// ApplyOption applies one sbatch option on top of spec, the way sbatch lets a
// command-line option override the script's directive. name may be given
// with or without its dashes, long ("time") or short ("t"); value is empty for
// options that take none (--hold, --exclusive). Options are those of
// [BatchParser.ParseScript]. --mem and --mem-per-cpu each clear the other, as
// a command-line memory option replaces the script's in sbatch, and --export
// replaces the whole of spec.Environment.
func (p BatchParser) ApplyOption(spec *JobSpec, name, value string) error {
	display := optionDisplay(name, value)
	var opt *sbatchOption
	var err error
	switch bare := strings.TrimLeft(name, "-"); {
	case len(bare) == 1 && !strings.HasPrefix(name, "--"):
		opt, err = lookupShort(bare[0])
	default:
		opt, err = lookupLong(bare)
	}
	if err == nil && opt.arg == argNone && value != "" {
		err = fmt.Errorf("--%s takes no value", opt.long)
	}
	if err == nil {
		err = opt.set(p, spec, value)
	}
	if err != nil {
		return &DirectiveError{Directive: display, Err: err}
	}
	if other, ok := memExclusive[opt.long]; ok {
		clearMemory(spec, other)
	}
	return nil
}

func optionDisplay(name, value string) string {
	bare := strings.TrimLeft(name, "-")
	switch {
	case len(bare) == 1 && !strings.HasPrefix(name, "--"):
		if value == "" {
			return "-" + bare
		}
		return "-" + bare + " " + value
	case value == "":
		return "--" + bare
	}
	return "--" + bare + "=" + value
}

func (p BatchParser) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// checkScript refuses what sbatch refuses before it reads any directive.
func checkScript(script string) error {
	if script == "" {
		return &DirectiveError{Err: errors.New("empty batch script")}
	}
	if !strings.HasPrefix(script, "#!") {
		return &DirectiveError{Line: 1, Err: errors.New(`a batch script must start with "#!" and the path of an interpreter, e.g. #!/bin/bash`)}
	}
	if i := strings.IndexByte(script, 0); i >= 0 {
		return &DirectiveError{Line: 1 + strings.Count(script[:i], "\n"), Err: errors.New("batch script contains a NUL byte")}
	}
	// The script runs unchanged on the node, where bash would fail on every
	// carriage return; sbatch refuses such scripts for the same reason.
	if i := strings.Index(script, "\r\n"); i >= 0 {
		return &DirectiveError{Line: 1 + strings.Count(script[:i], "\n"), Err: errors.New(`batch script has DOS line breaks (\r\n); convert it to UNIX line breaks (\n), e.g. with dos2unix`)}
	}
	return nil
}

// isCommandLine reports whether line ends the directive section: anything but
// blanks and comments does, even when indented.
func isCommandLine(line string) bool {
	t := strings.TrimLeftFunc(line, isCSpace)
	return t != "" && t[0] != '#'
}

// isCSpace is C's isspace in the "C" locale, which is what sbatch splits on.
func isCSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// A word is one argument of a directive line.
type word struct {
	text string // quotes and escapes removed
	raw  string // as written, for messages
}

// splitDirective splits the text after "#SBATCH" into words as sbatch's
// _get_argument does.
func splitDirective(s string) ([]word, error) {
	var words []word
	i := 0
	for {
		for i < len(s) && isCSpace(rune(s[i])) {
			i++
		}
		if i == len(s) || s[i] == '#' {
			return words, nil
		}
		if s[i] == ':' {
			return words, errors.New(`unexpected ":": heterogeneous jobs are not supported; submit one session per component`)
		}
		start := i
		var b strings.Builder
		var quote byte
		escaped, comment := false, false
	scan:
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case quote == 0 && isCSpace(rune(c)):
				// White space ends an unquoted word even right after a
				// backslash: sbatch tests for it before honouring the escape.
				break scan
			case escaped:
				b.WriteByte(c)
				escaped = false
			case c == '\\':
				escaped = true
			case quote != 0:
				if c == quote {
					quote = 0
				} else {
					b.WriteByte(c)
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '#':
				comment = true
				break scan
			default:
				b.WriteByte(c)
			}
		}
		if quote != 0 {
			return words, fmt.Errorf("unmatched %c", quote)
		}
		words = append(words, word{text: b.String(), raw: s[start:i]})
		if comment {
			return words, nil
		}
	}
}

// An optionUse is one option found on a directive line.
type optionUse struct {
	opt       *sbatchOption
	value     string
	directive string
}

// readDirective turns the text after "#SBATCH" into options the way
// getopt_long reads sbatch's argv. It returns the options it could read
// before an error; the error's Line is left for the caller.
func readDirective(s string) ([]optionUse, *DirectiveError) {
	words, err := splitDirective(s)
	if err != nil {
		// A line sbatch cannot even split is wrong as a whole.
		return nil, &DirectiveError{Directive: strings.TrimSpace(s), Err: err}
	}
	var uses []optionUse
	for i := 0; i < len(words); i++ {
		w := words[i]
		// take consumes the next word as a value, as getopt does even when
		// that word looks like an option.
		take := func(name string) (string, string, *DirectiveError) {
			if i+1 == len(words) {
				return "", "", &DirectiveError{Directive: w.raw, Err: fmt.Errorf("%s needs a value on the same line", name)}
			}
			i++
			return words[i].text, w.raw + " " + words[i].raw, nil
		}
		switch {
		case strings.EqualFold(w.text, "hetjob") || strings.EqualFold(w.text, "packjob"):
			return uses, &DirectiveError{Directive: w.raw, Err: errors.New("heterogeneous jobs are not supported; submit one session per component")}
		case len(w.text) > 2 && strings.HasPrefix(w.text, "--"):
			name, value, hasValue := strings.Cut(w.text[2:], "=")
			opt, err := lookupLong(name)
			if err != nil {
				return uses, &DirectiveError{Directive: w.raw, Err: err}
			}
			directive := w.raw
			switch opt.arg {
			case argNone:
				if hasValue {
					return uses, &DirectiveError{Directive: w.raw, Err: fmt.Errorf("--%s takes no value", opt.long)}
				}
			case argRequired:
				if !hasValue {
					var derr *DirectiveError
					if value, directive, derr = take("--" + opt.long); derr != nil {
						return uses, derr
					}
				}
			}
			uses = append(uses, optionUse{opt: opt, value: value, directive: directive})
		case len(w.text) > 1 && w.text[0] == '-' && w.text[1] != '-':
			for j := 1; j < len(w.text); j++ {
				opt, err := lookupShort(w.text[j])
				if err != nil {
					return uses, &DirectiveError{Directive: w.raw, Err: err}
				}
				if opt.arg == argNone {
					uses = append(uses, optionUse{opt: opt, directive: w.raw})
					continue
				}
				value, directive := w.text[j+1:], w.raw
				if value == "" {
					var derr *DirectiveError
					if value, directive, derr = take("-" + string(rune(opt.short))); derr != nil {
						return uses, derr
					}
				}
				uses = append(uses, optionUse{opt: opt, value: value, directive: directive})
				break
			}
		default:
			// sbatch 22.05 refuses stray words too ("Invalid directive found
			// in batch script").
			return uses, &DirectiveError{Directive: w.raw, Err: fmt.Errorf("%q is not an option", w.text)}
		}
	}
	return uses, nil
}

type argMode uint8

const (
	argRequired argMode = iota // --name=value, --name value, -n value, -nvalue
	argNone                    // --name, -n
	argOptional                // --name or --name=value, never a separate word (getopt's optional_argument)
)

type sbatchOption struct {
	long  string
	short byte // 0 when there is no short form
	arg   argMode
	set   func(p BatchParser, spec *JobSpec, value string) error
}

// memExclusive pairs the memory options that exclude each other.
var memExclusive = map[string]string{"mem": "mem-per-cpu", "mem-per-cpu": "mem"}

func clearMemory(spec *JobSpec, long string) {
	switch long {
	case "mem":
		spec.MemoryMB = 0
	case "mem-per-cpu":
		spec.MemoryPerCPUMB = 0
	}
}

// sbatchOptions are the options Slurmgate understands. "array" is here only
// to be refused with a reason.
var sbatchOptions = []sbatchOption{
	{long: "account", short: 'A', set: func(_ BatchParser, s *JobSpec, v string) error {
		return setName(&s.Account, v, "account")
	}},
	{long: "array", short: 'a', set: func(BatchParser, *JobSpec, string) error {
		return errors.New("job arrays are not supported; submit one session per task")
	}},
	{long: "begin", short: 'b', set: func(p BatchParser, s *JobSpec, v string) error {
		t, err := parseBegin(v, p.now())
		if err != nil {
			return err
		}
		s.Begin = t
		return nil
	}},
	{long: "chdir", short: 'D', set: func(_ BatchParser, s *JobSpec, v string) error {
		if !path.IsAbs(v) {
			return fmt.Errorf("working directory %q must be an absolute path", v)
		}
		s.WorkDir = v
		return nil
	}},
	{long: "comment", set: func(_ BatchParser, s *JobSpec, v string) error {
		s.Comment = v
		return nil
	}},
	{long: "constraint", short: 'C', set: func(_ BatchParser, s *JobSpec, v string) error {
		return setText(&s.Constraint, v, "constraint")
	}},
	{long: "cpus-per-task", short: 'c', set: func(_ BatchParser, s *JobSpec, v string) error {
		return setCount(&s.CPUsPerTask, v, "CPUs per task")
	}},
	{long: "dependency", short: 'd', set: func(_ BatchParser, s *JobSpec, v string) error {
		if err := checkDependency(v); err != nil {
			return err
		}
		s.Dependency = v
		return nil
	}},
	{long: "error", short: 'e', set: func(_ BatchParser, s *JobSpec, v string) error {
		return setOutputPath(&s.StdErr, v)
	}},
	{long: "exclusive", arg: argOptional, set: func(_ BatchParser, s *JobSpec, v string) error {
		if v != "" {
			return fmt.Errorf("--exclusive=%s is not supported; only --exclusive (whole nodes) is", v)
		}
		s.Exclusive = true
		return nil
	}},
	{long: "export", set: func(_ BatchParser, s *JobSpec, v string) error {
		env, err := parseExport(v)
		if err != nil {
			return err
		}
		s.Environment = env
		return nil
	}},
	{long: "gpus", short: 'G', set: func(_ BatchParser, s *JobSpec, v string) error {
		return setGPUs(&s.GPUs, v)
	}},
	{long: "gpus-per-node", set: func(_ BatchParser, s *JobSpec, v string) error {
		return setGPUs(&s.GPUsPerNode, v)
	}},
	{long: "gres", set: func(_ BatchParser, s *JobSpec, v string) error {
		g, err := parseGRESRequest(v)
		if err != nil {
			return err
		}
		s.GRES = g
		return nil
	}},
	{long: "hold", short: 'H', arg: argNone, set: func(_ BatchParser, s *JobSpec, _ string) error {
		s.Hold = true
		return nil
	}},
	{long: "job-name", short: 'J', set: func(_ BatchParser, s *JobSpec, v string) error {
		return setText(&s.Name, v, "job name")
	}},
	{long: "mem", set: func(_ BatchParser, s *JobSpec, v string) error {
		return setMemory(&s.MemoryMB, v, "--mem=0 asks Slurm for all of each node's memory, which Slurmgate does not request; give a size, e.g. --mem=64G")
	}},
	{long: "mem-per-cpu", set: func(_ BatchParser, s *JobSpec, v string) error {
		return setMemory(&s.MemoryPerCPUMB, v, "memory per CPU must be more than 0")
	}},
	{long: "nodes", short: 'N', set: func(_ BatchParser, s *JobSpec, v string) error {
		n, err := parseNodeCount(v)
		if err != nil {
			return err
		}
		s.Nodes = n
		return nil
	}},
	{long: "ntasks", short: 'n', set: func(_ BatchParser, s *JobSpec, v string) error {
		return setCount(&s.Tasks, v, "task count")
	}},
	{long: "output", short: 'o', set: func(_ BatchParser, s *JobSpec, v string) error {
		return setOutputPath(&s.StdOut, v)
	}},
	{long: "partition", short: 'p', set: func(_ BatchParser, s *JobSpec, v string) error {
		// A comma list lets Slurm start the job in whichever partition can
		// run it first.
		for part := range strings.SplitSeq(v, ",") {
			if err := checkOptionName(part, "partition"); err != nil {
				return fmt.Errorf("%w; want a name or a comma-separated list of names", err)
			}
		}
		s.Partition = v
		return nil
	}},
	{long: "qos", short: 'q', set: func(_ BatchParser, s *JobSpec, v string) error {
		return setName(&s.QOS, v, "QOS")
	}},
	{long: "time", short: 't', set: func(_ BatchParser, s *JobSpec, v string) error {
		d, err := ParseTimeLimit(v)
		if err != nil {
			return err
		}
		s.TimeLimit = d
		return nil
	}},
}

// sbatchLongOptions are all long options of sbatch 22.05 (sbatch(1)). They
// resolve abbreviations exactly as sbatch's getopt_long does, so that an
// abbreviation sbatch finds ambiguous is ambiguous here too, and they tell an
// option Slurmgate does not support from a misspelt one.
var sbatchLongOptions = []string{
	"account", "acctg-freq", "array", "batch", "bb", "bbf", "begin", "chdir",
	"cluster-constraint", "clusters", "comment", "constraint", "container",
	"contiguous", "core-spec", "cores-per-socket", "cpu-freq", "cpus-per-gpu",
	"cpus-per-task", "deadline", "delay-boot", "dependency", "distribution",
	"error", "exclude", "exclusive", "export", "export-file",
	"extra-node-info", "get-user-env", "gid", "gpu-bind", "gpu-freq", "gpus",
	"gpus-per-node", "gpus-per-socket", "gpus-per-task", "gres", "gres-flags",
	"help", "hint", "hold", "ignore-pbs", "input", "job-name",
	"kill-on-invalid-dep", "licenses", "mail-type", "mail-user", "mcs-label",
	"mem", "mem-bind", "mem-per-cpu", "mem-per-gpu", "mincpus", "network",
	"nice", "no-kill", "no-requeue", "nodefile", "nodelist", "nodes",
	"ntasks", "ntasks-per-core", "ntasks-per-gpu", "ntasks-per-node",
	"ntasks-per-socket", "open-mode", "output", "overcommit", "oversubscribe",
	"parsable", "partition", "power", "prefer", "priority", "profile",
	"propagate", "qos", "quiet", "reboot", "requeue", "reservation", "signal",
	"sockets-per-node", "spread-job", "switches", "test-only", "thread-spec",
	"threads-per-core", "time", "time-min", "tmp", "uid", "usage",
	"use-min-nodes", "verbose", "version", "wait", "wait-all-nodes", "wckey",
	"wrap",
}

// sbatchShortOptions are all single-letter options of sbatch 22.05.
const sbatchShortOptions = "ABCDFGHJLMNOQSVWabcdehikmnopqstvwx"

func lookupLong(name string) (*sbatchOption, error) {
	if name == "" {
		return nil, errors.New("missing option name")
	}
	full := name
	if !slices.Contains(sbatchLongOptions, name) {
		var matches []string
		for _, o := range sbatchLongOptions {
			if strings.HasPrefix(o, name) {
				matches = append(matches, o)
			}
		}
		switch len(matches) {
		case 0:
			if s := closestOption(name); s != "" {
				return nil, fmt.Errorf("unknown sbatch option --%s; did you mean --%s?", name, s)
			}
			return nil, fmt.Errorf("unknown sbatch option --%s", name)
		case 1:
			full = matches[0]
		default:
			return nil, fmt.Errorf("--%s is ambiguous: it abbreviates --%s", name, strings.Join(matches, ", --"))
		}
	}
	for i := range sbatchOptions {
		if sbatchOptions[i].long == full {
			return &sbatchOptions[i], nil
		}
	}
	return nil, fmt.Errorf("sbatch option --%s is not supported by Slurmgate", full)
}

func lookupShort(c byte) (*sbatchOption, error) {
	for i := range sbatchOptions {
		if sbatchOptions[i].short == c {
			return &sbatchOptions[i], nil
		}
	}
	if strings.IndexByte(sbatchShortOptions, c) >= 0 {
		return nil, fmt.Errorf("sbatch option %s is not supported by Slurmgate", shortName(c))
	}
	return nil, fmt.Errorf("unknown sbatch option %s", shortName(c))
}

func shortName(c byte) string {
	if c > ' ' && c < 0x7f {
		return "-" + string(rune(c))
	}
	return strconv.Quote(string([]byte{'-', c}))
}

// closestOption suggests the sbatch option a misspelt name most likely meant:
// the nearest within two edits, if one is clearly nearest.
func closestOption(name string) string {
	best, bestDist, tie := "", 3, false
	for _, o := range sbatchLongOptions {
		d := editDistance(name, o)
		switch {
		case d < bestDist:
			best, bestDist, tie = o, d, false
		case d == bestDist:
			tie = true
		}
	}
	if tie || bestDist >= len(name) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between two short ASCII strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func setName(dst *string, v, what string) error {
	if err := checkOptionName(v, what); err != nil {
		return err
	}
	*dst = v
	return nil
}

// checkOptionName accepts an account, partition or QOS name: Slurm would reject
// white space in one at submission, later and less clearly.
func checkOptionName(v, what string) error {
	if v == "" {
		return fmt.Errorf("empty %s name", what)
	}
	if strings.IndexFunc(v, unicode.IsSpace) >= 0 {
		return fmt.Errorf("%s name %q contains white space", what, v)
	}
	return nil
}

func setText(dst *string, v, what string) error {
	if v == "" {
		return fmt.Errorf("empty %s", what)
	}
	*dst = v
	return nil
}

// setOutputPath keeps the path as written: Slurm expands its %j-style
// patterns and resolves a relative path against the job's working directory
// on the node. "none" means no file, as in sbatch.
func setOutputPath(dst *string, v string) error {
	switch {
	case v == "":
		return errors.New("empty file name; use none to discard the stream")
	case strings.EqualFold(v, "none"):
		*dst = "/dev/null"
	default:
		*dst = v
	}
	return nil
}

func setCount(dst *int, v, what string) error {
	n, err := parseCount(v, "")
	if err != nil || n > math.MaxInt32 {
		return fmt.Errorf("invalid %s %q: want a whole number of at least 1", what, v)
	}
	*dst = int(n)
	return nil
}

func setMemory(dst *int64, v, zero string) error {
	mb, err := ParseMemoryMB(v)
	if err != nil {
		return fmt.Errorf("%w, e.g. 4096 or 4G (default unit M)", err)
	}
	if mb == 0 {
		return errors.New(zero)
	}
	*dst = mb
	return nil
}

// parseCount parses a positive decimal count with an optional binary suffix
// from suffixes ("km" for node counts, in that order of magnitude), as Slurm
// scales them: "2k" is 2048.
func parseCount(s, suffixes string) (int64, error) {
	shift := 0
	if s != "" {
		if i := strings.IndexByte(suffixes, lower(s[len(s)-1])); i >= 0 {
			s, shift = s[:len(s)-1], 10*(i+1)
		}
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, errors.New("not a whole number")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, errors.New("too large")
	}
	if n == 0 {
		return 0, errors.New("zero")
	}
	return n << shift, nil
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// parseNodeCount reads MIN or MIN-MAX. JobSpec holds one count, so a range
// keeps its minimum: that is what Slurm guarantees, and the job never gets
// fewer nodes than the script is written for.
func parseNodeCount(v string) (int, error) {
	bad := fmt.Errorf("invalid node count %q: want a count N or a range MIN-MAX, e.g. 2 or 2-4", v)
	lo, hi, isRange := strings.Cut(v, "-")
	minN, err := parseCount(lo, "km")
	if err != nil || minN > math.MaxInt32 {
		return 0, bad
	}
	if isRange {
		maxN, err := parseCount(hi, "km")
		if err != nil {
			return 0, bad
		}
		if maxN < minN {
			return 0, fmt.Errorf("invalid node count %q: the maximum %d is less than the minimum %d", v, maxN, minN)
		}
	}
	return int(minN), nil
}

// parseGRESRequest reads --gres: what [ParseGRES] reads, or "none" for no
// GRES, refusing the repeats and mixtures slurmctld would refuse later with
// a vaguer message.
func parseGRESRequest(v string) ([]GRES, error) {
	if strings.EqualFold(v, "none") {
		return nil, nil
	}
	list, err := ParseGRES(v)
	if err != nil {
		return nil, err
	}
	for i, g := range list {
		for _, h := range list[:i] {
			switch {
			case h.Name == g.Name && h.Type == g.Type:
				return nil, fmt.Errorf("gres %q asks for %s twice", v, g.Name+typeSuffix(g.Type))
			case h.Name == g.Name:
				if h.Type == "" || g.Type == "" {
					// Slurm cannot split one GRES between a typed and an
					// untyped request ("with and without type identification").
					return nil, fmt.Errorf("gres %q asks for %s both with and without a type", v, g.Name)
				}
			}
		}
	}
	return list, nil
}

func typeSuffix(t string) string {
	if t == "" {
		return ""
	}
	return ":" + t
}

// setGPUs reads [type:]count. Slurm also takes a comma list of types here,
// but JobSpec carries one GPU request, so a list is refused rather than
// truncated.
func setGPUs(dst **GRES, v string) error {
	bad := func(why string) error {
		return fmt.Errorf("invalid GPU request %q: %s; want [type:]count, e.g. 2 or a100:2", v, why)
	}
	if strings.Contains(v, ",") {
		return bad("only one GPU type per job is supported")
	}
	typ, count, typed := strings.Cut(v, ":")
	if !typed {
		typ, count = "", v
	} else if typ == "" {
		return bad("empty type")
	}
	n, err := parseCount(count, "")
	if err != nil {
		return bad("the count is " + err.Error())
	}
	*dst = &GRES{Name: "gpu", Type: typ, Count: n}
	return nil
}

// parseExport reads --export. A Slurmgate job never inherits the environment
// of the process that submits it, so ALL and NONE describe the same thing
// here and only VAR=value pairs reach Environment; a bare VAR, which asks
// sbatch to copy VAR from the submitting shell, has nothing to copy from and
// is refused. Values cannot contain commas: the list is comma-separated.
func parseExport(v string) (map[string]string, error) {
	items := strings.Split(v, ",")
	mode := strings.ToUpper(items[0])
	switch mode {
	case "ALL", "NONE", "NIL":
		items = items[1:]
		if mode != "ALL" && len(items) > 0 {
			return nil, fmt.Errorf("--export=%s takes no variables; give them as --export=VAR=value,VAR2=value2", mode)
		}
	}
	if len(items) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(items))
	for _, item := range items {
		name, value, ok := strings.Cut(item, "=")
		if !validEnvName(name) {
			return nil, fmt.Errorf("invalid variable %q in --export: want VAR=value with VAR made of letters, digits and _", item)
		}
		if !ok {
			return nil, fmt.Errorf("--export=%s would copy %s from the submitting shell, which a Slurmgate job does not have; write %s=value", v, name, name)
		}
		env[name] = value
	}
	return env, nil
}

func validEnvName(s string) bool {
	if s == "" || ('0' <= s[0] && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// dependencyTypes are the --dependency types of sbatch 22.05 that Slurmgate
// passes on ("expand" grows a running job, which sessions never do).
var dependencyTypes = []string{"after", "afterany", "afterburstbuffer", "aftercorr", "afternotok", "afterok", "singleton"}

// checkDependency validates --dependency before Slurm sees it, so that a typo
// is a clear error at submission instead of a job pending with
// DependencyNeverSatisfied.
func checkDependency(v string) error {
	form := "want type:jobid[:jobid...] joined by , (all) or ? (any), e.g. afterok:123:124,afterany:125"
	if v == "" {
		return fmt.Errorf("empty dependency; %s", form)
	}
	sep := ","
	if strings.Contains(v, "?") {
		if strings.Contains(v, ",") {
			return fmt.Errorf("dependency %q mixes , and ?; use one of them", v)
		}
		sep = "?"
	}
	for dep := range strings.SplitSeq(v, sep) {
		typ, ids, hasIDs := strings.Cut(dep, ":")
		t := strings.ToLower(typ)
		if !slices.Contains(dependencyTypes, t) {
			return fmt.Errorf("dependency %q: unknown type %q; want one of %s", v, typ, strings.Join(dependencyTypes, ", "))
		}
		if t == "singleton" {
			if hasIDs {
				return fmt.Errorf("dependency %q: singleton takes no job IDs", v)
			}
			continue
		}
		if ids == "" {
			return fmt.Errorf("dependency %q: %s needs at least one job ID; %s", v, typ, form)
		}
		for id := range strings.SplitSeq(ids, ":") {
			if t == "after" {
				// after:jobid+minutes waits that long after the job starts.
				var delay string
				var delayed bool
				if id, delay, delayed = strings.Cut(id, "+"); delayed {
					if _, err := parseCount(delay, ""); err != nil {
						return fmt.Errorf("dependency %q: delay %q is not a whole number of minutes", v, delay)
					}
				}
			}
			if !validJobRef(id) {
				return fmt.Errorf("dependency %q: %q is not a job ID; %s", v, id, form)
			}
		}
	}
	return nil
}

// validJobRef accepts a job ID or an array task (123_4, 123_*).
func validJobRef(s string) bool {
	id, task, isTask := strings.Cut(s, "_")
	if _, err := parseCount(id, ""); err != nil {
		return false
	}
	if !isTask || task == "*" {
		return true
	}
	return task != "" && strings.Trim(task, "0123456789") == ""
}
