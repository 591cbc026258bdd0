package slurmctl

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParseTimeLimit parses a Slurm time limit in any form sbatch --time accepts:
// "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
// "days-hours:minutes" and "days-hours:minutes:seconds" (fields need not be
// zero-padded nor within 60 or 24, as in Slurm; "days-" alone means whole
// days). Slurm keeps limits in whole minutes and rounds seconds up, and so
// does this: "30:30" is 31 minutes.
//
// "UNLIMITED", "INFINITE", "-1" and "0" all ask for no limit of the job's
// own. They return 0, which [JobSpec], [Limits] and [Partition] all read as
// "no limit of its own": a job then gets its partition's default limit,
// bounded by the partition's maximum, which is where Slurm would cap an
// unlimited request anyway rather than leave the job pending forever with
// PartitionTimeLimit.
func ParseTimeLimit(s string) (time.Duration, error) {
	const form = "want minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds or UNLIMITED"
	t := strings.TrimSpace(s)
	switch strings.ToUpper(t) {
	case "UNLIMITED", "INFINITE", "-1":
		return 0, nil
	}
	var fields []string
	var days string
	dayForm := strings.Contains(t, "-")
	if dayForm {
		var rest string
		days, rest, _ = strings.Cut(t, "-")
		if rest != "" {
			fields = strings.Split(rest, ":")
		}
	} else {
		fields = strings.Split(t, ":")
	}
	if (!dayForm && len(fields) == 0) || len(fields) > 3 {
		return 0, fmt.Errorf("invalid time limit %q: %s", s, form)
	}
	num := func(f string) (int64, bool) {
		if f == "" || strings.Trim(f, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(f, 10, 32)
		return n, err == nil
	}
	var secs int64
	if dayForm {
		d, ok := num(days)
		if !ok {
			return 0, fmt.Errorf("invalid time limit %q: %s", s, form)
		}
		secs = d * 86400
	}
	// With days the fields start at hours; without, one or two fields start
	// at minutes and only three start at hours.
	units := []int64{3600, 60, 1}
	if !dayForm && len(fields) < 3 {
		units = units[1:]
	}
	for i, f := range fields {
		n, ok := num(f)
		if !ok {
			return 0, fmt.Errorf("invalid time limit %q: %s", s, form)
		}
		secs += n * units[i]
	}
	minutes := (secs + 59) / 60
	if minutes > int64(math.MaxInt64/time.Minute) {
		return 0, fmt.Errorf("time limit %q is too long", s)
	}
	return time.Duration(minutes) * time.Minute, nil
}

// FormatTimeLimit renders d as Slurm prints limits: "D-HH:MM:SS" when it
// spans a day or more, else "HH:MM:SS". Zero renders as "00:00:00"; callers
// that mean "no limit" by zero should say so themselves. Sub-second parts are
// dropped and negative durations render as Slurm's "INVALID".
func FormatTimeLimit(d time.Duration) string {
	if d < 0 {
		return "INVALID"
	}
	s := int64(d / time.Second)
	days, s := s/86400, s%86400
	hms := fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
	if days > 0 {
		return fmt.Sprintf("%d-%s", days, hms)
	}
	return hms
}

// maxBeginOffset bounds now+count offsets so that arithmetic cannot overflow;
// nobody schedules a session a century ahead.
const maxBeginOffset = 100 * 365 * 24 * time.Hour

// parseBegin reads a --begin time as Slurm's parse_time does, relative to
// now and in now's location: HH:MM[:SS] [AM|PM]; midnight, noon, elevenses,
// fika, teatime; today, tomorrow; MMDD[YY], MM/DD[/YY], MM.DD[.YY];
// YYYY-MM-DD; a date and a time joined by "-" or "T"; and
// now[{+|-}count[seconds|minutes|hours|days|weeks]], seconds by default.
// A time without a date is the next such time; a date without a year is the
// next such date; a date without a time is midnight. Unlike Slurm, a day the
// month does not have (02/31) is an error rather than rolling over.
func parseBegin(s string, now time.Time) (time.Time, error) {
	const form = "want HH:MM[:SS], YYYY-MM-DD[THH:MM[:SS]], MM/DD[/YY], now+count[seconds|minutes|hours|days|weeks], today, tomorrow, midnight, noon or teatime"
	bad := func(why string) (time.Time, error) {
		if why != "" {
			why += "; "
		}
		return time.Time{}, fmt.Errorf("invalid begin time %q: %s%s", s, why, form)
	}
	now = now.Truncate(time.Second)
	year, month, day := -1, -1, -1
	hour, minute, second := -1, -1, 0
	setDate := func(t time.Time) {
		y, m, d := t.Date()
		year, month, day = y, int(m), d
	}
	str := strings.ToLower(s)
	for i := 0; i < len(str); {
		rest := str[i:]
		clock := func(h, m, sec, n int) {
			hour, minute, second = h, m, sec
			i += n
		}
		switch {
		case rest[0] == ' ' || rest[0] == '\t' || rest[0] == '-':
			i++
		case strings.HasPrefix(rest, "today"):
			setDate(now)
			i += len("today")
		case strings.HasPrefix(rest, "tomorrow"):
			setDate(now.AddDate(0, 0, 1))
			i += len("tomorrow")
		case strings.HasPrefix(rest, "midnight"):
			clock(0, 0, 0, len("midnight"))
		case strings.HasPrefix(rest, "noon"):
			clock(12, 0, 0, len("noon"))
		case strings.HasPrefix(rest, "elevenses"):
			clock(11, 0, 0, len("elevenses"))
		case strings.HasPrefix(rest, "fika"):
			clock(15, 0, 0, len("fika"))
		case strings.HasPrefix(rest, "teatime"):
			clock(16, 0, 0, len("teatime"))
		case strings.HasPrefix(rest, "now"):
			delta, n, err := parseBeginOffset(rest[len("now"):])
			if err != nil {
				return bad(err.Error())
			}
			t := now.Add(delta)
			setDate(t)
			clock(t.Hour(), t.Minute(), t.Second(), len("now")+n)
		case rest[0] == 't':
			i++ // the T of YYYY-MM-DDTHH:MM
		case isDigit(rest[0]):
			// Slurm tells a clock time from a date by a colon after one or
			// two digits.
			if len(rest) > 1 && rest[1] == ':' || len(rest) > 2 && rest[2] == ':' {
				h, m, sec, n, err := parseClock(rest)
				if err != nil {
					return bad(err.Error())
				}
				clock(h, m, sec, n)
				continue
			}
			y, mo, d, n, err := parseDate(rest)
			if err != nil {
				return bad(err.Error())
			}
			if y >= 0 {
				year = y
			}
			month, day = mo, d
			i += n
		default:
			return bad("")
		}
	}
	switch {
	case hour < 0 && month < 0:
		return bad("")
	case hour < 0:
		hour, minute, second = 0, 0, 0
	case month < 0:
		// The next such time: today if it is still ahead (to the minute,
		// as Slurm compares), else tomorrow.
		if hour > now.Hour() || hour == now.Hour() && minute > now.Minute() {
			setDate(now)
		} else {
			setDate(now.AddDate(0, 0, 1))
		}
	}
	if year < 0 {
		year = now.Year()
		if !after(month, day, hour, minute, int(now.Month()), now.Day(), now.Hour(), now.Minute()) {
			year++
		}
	}
	t := time.Date(year, time.Month(month), day, hour, minute, second, 0, now.Location())
	if t.Day() != day {
		return bad(fmt.Sprintf("%04d-%02d has no day %d", year, month, day))
	}
	return t, nil
}

// after reports whether the first (month, day, hour, minute) comes later in
// a year than the second.
func after(mo, d, h, m, mo2, d2, h2, m2 int) bool {
	return slices.Compare([]int{mo, d, h, m}, []int{mo2, d2, h2, m2}) > 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// beginUnits are parse_time's unit names, longest first so that "hours" is
// not read as "hour" followed by a stray "s".
var beginUnits = []struct {
	name string
	d    time.Duration
}{
	{"seconds", time.Second}, {"second", time.Second},
	{"minutes", time.Minute}, {"minute", time.Minute},
	{"hours", time.Hour}, {"hour", time.Hour},
	{"days", 24 * time.Hour}, {"day", 24 * time.Hour},
	{"weeks", 7 * 24 * time.Hour}, {"week", 7 * 24 * time.Hour},
}

// parseBeginOffset reads what follows "now": nothing, or +count or -count
// with an optional unit. It returns the offset and the bytes it consumed.
func parseBeginOffset(s string) (time.Duration, int, error) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	if i == len(s) {
		return 0, i, nil
	}
	sign := time.Duration(1)
	switch s[i] {
	case '+':
	case '-':
		sign = -1
	default:
		return 0, 0, errors.New(`"now" may only be followed by +count or -count`)
	}
	i++
	for i < len(s) && s[i] == ' ' {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if start == i {
		return 0, 0, errors.New("missing count after now+")
	}
	n, err := strconv.ParseInt(s[start:i], 10, 64)
	if err != nil {
		return 0, 0, errors.New("offset too large")
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	unit := time.Second
	for _, u := range beginUnits {
		if strings.HasPrefix(s[i:], u.name) {
			unit = u.d
			i += len(u.name)
			break
		}
	}
	if n > int64(maxBeginOffset/unit) {
		return 0, 0, errors.New("offset too large")
	}
	return sign * time.Duration(n) * unit, i, nil
}

// parseClock reads H:MM or HH:MM, optional :SS, and an optional AM or PM.
func parseClock(s string) (h, m, sec, n int, err error) {
	two := func(at int) (int, bool) {
		if at+2 > len(s) || !isDigit(s[at]) || !isDigit(s[at+1]) {
			return 0, false
		}
		return int(s[at]-'0')*10 + int(s[at+1]-'0'), true
	}
	i := 1
	h = int(s[0] - '0')
	if s[1] != ':' {
		if !isDigit(s[1]) {
			return 0, 0, 0, 0, errors.New("not a time of day")
		}
		h = h*10 + int(s[1]-'0')
		i = 2
	}
	var ok bool
	if m, ok = two(i + 1); !ok || h > 23 || m > 59 {
		return 0, 0, 0, 0, errors.New("hours run from 0 to 23 and minutes from 00 to 59")
	}
	i += 3
	if i < len(s) && s[i] == ':' {
		if sec, ok = two(i + 1); !ok || sec > 59 {
			return 0, 0, 0, 0, errors.New("seconds run from 00 to 59")
		}
		i += 3
	}
	j := i
	for j < len(s) && s[j] == ' ' {
		j++
	}
	switch {
	case strings.HasPrefix(s[j:], "pm"):
		if h > 12 {
			return 0, 0, 0, 0, errors.New("PM needs an hour up to 12")
		}
		if h < 12 {
			h += 12
		}
		i = j + 2
	case strings.HasPrefix(s[j:], "am"):
		if h > 12 {
			return 0, 0, 0, 0, errors.New("AM needs an hour up to 12")
		}
		if h == 12 {
			h = 0
		}
		i = j + 2
	}
	return h, m, sec, i, nil
}

// parseDate reads YYYY-MM-DD or MM[/.]DD[[/.]YY]. The year is -1 when left
// out.
func parseDate(s string) (year, month, day, n int, err error) {
	digits := func(at, most int) (v, end int) {
		end = at
		for end < len(s) && end-at < most && isDigit(s[end]) {
			v = v*10 + int(s[end]-'0')
			end++
		}
		return v, end
	}
	year = -1
	i := 0
	if len(s) > 7 && s[4] == '-' && s[7] == '-' {
		var end int
		if year, end = digits(0, 4); end != 4 {
			return 0, 0, 0, 0, errors.New("YYYY-MM-DD needs a four-digit year")
		}
		if month, end = digits(5, 2); end != 7 {
			return 0, 0, 0, 0, errors.New("YYYY-MM-DD needs a two-digit month")
		}
		i = 8
	} else {
		month, i = digits(0, 2)
		if i < len(s) && (s[i] == '/' || s[i] == '.') {
			i++
		}
	}
	if month < 1 || month > 12 {
		return 0, 0, 0, 0, errors.New("months run from 01 to 12")
	}
	start := i
	if day, i = digits(i, 2); i == start || day < 1 || day > 31 {
		return 0, 0, 0, 0, errors.New("days run from 01 to 31")
	}
	if year >= 0 {
		return year, month, day, i, nil
	}
	if i < len(s) && (s[i] == '/' || s[i] == '.') {
		i++
	}
	if i < len(s) && isDigit(s[i]) {
		var end int
		if year, end = digits(i, 2); end != i+2 {
			return 0, 0, 0, 0, errors.New("MM/DD/YY needs a two-digit year")
		}
		year += 2000
		i = end
	}
	return year, month, day, i, nil
}
