package slurmctl

import (
	"testing"
	"time"
)

func TestParseTimeLimit(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		// The forms of sbatch(1) --time.
		{"60", time.Hour},
		{"30:30", 31 * time.Minute}, // Slurm rounds seconds up to the minute
		{"1:30:00", 90 * time.Minute},
		{"4-12", 4*24*time.Hour + 12*time.Hour},
		{"4-12:15", 4*24*time.Hour + 12*time.Hour + 15*time.Minute},
		{"4-12:15:30", 4*24*time.Hour + 12*time.Hour + 16*time.Minute},
		// Fields are not range-checked, as in Slurm.
		{"90:00", 90 * time.Minute},
		{"0:90", 2 * time.Minute},
		{"1:2:3", time.Hour + 3*time.Minute},
		{"0-36", 36 * time.Hour},
		{"007", 7 * time.Minute},
		{"2-", 48 * time.Hour},
		{" 10 ", 10 * time.Minute},
		// No limit of the job's own.
		{"0", 0},
		{"0:0:0", 0},
		{"UNLIMITED", 0},
		{"infinite", 0},
		{"-1", 0},
	}
	for _, tt := range tests {
		got, err := ParseTimeLimit(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseTimeLimit(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		if back, err := ParseTimeLimit(FormatTimeLimit(got)); err != nil || back != got {
			t.Errorf("ParseTimeLimit(FormatTimeLimit(%v) = %q) = %v, %v", got, FormatTimeLimit(got), back, err)
		}
	}
	for _, in := range []string{
		"", " ", "abc", "1:2:3:4", "1-2:3:4:5", ":5", "5:", "1::1", "-5", "1-2-3", "1.5", "+5",
		"1-:30", "1-2:", "-", "1h", "１２", "99999999999", "2147483647-0",
	} {
		if d, err := ParseTimeLimit(in); err == nil {
			t.Errorf("ParseTimeLimit(%q) = %v, want an error", in, d)
		}
	}
}

func TestFormatTimeLimit(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "00:00:00"},
		{59 * time.Second, "00:00:59"},
		{1500 * time.Millisecond, "00:00:01"},
		{90 * time.Minute, "01:30:00"},
		{24*time.Hour - time.Second, "23:59:59"},
		{24 * time.Hour, "1-00:00:00"},
		{36 * time.Hour, "1-12:00:00"},
		{4*24*time.Hour + 12*time.Hour + 16*time.Minute, "4-12:16:00"},
		{400 * 24 * time.Hour, "400-00:00:00"},
		{-time.Minute, "INVALID"},
	}
	for _, tt := range tests {
		if got := FormatTimeLimit(tt.in); got != tt.want {
			t.Errorf("FormatTimeLimit(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseBegin(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		// HH:MM[:SS] [AM|PM]: the next such time.
		{"16:00", at(2025, 3, 14, 16, 0, 0)},
		{"9:00", at(2025, 3, 15, 9, 0, 0)},
		{"10:30", at(2025, 3, 15, 10, 30, 0)}, // this minute has begun: tomorrow, as in Slurm
		{"10:31", at(2025, 3, 14, 10, 31, 0)},
		{"16:00:30", at(2025, 3, 14, 16, 0, 30)},
		{"4:05pm", at(2025, 3, 14, 16, 5, 0)},
		{"11:59:30 PM", at(2025, 3, 14, 23, 59, 30)},
		{"12:30pm", at(2025, 3, 14, 12, 30, 0)},
		{"12:00am", at(2025, 3, 15, 0, 0, 0)},
		{"11:00AM", at(2025, 3, 14, 11, 0, 0)},
		// Named times of day.
		{"midnight", at(2025, 3, 15, 0, 0, 0)},
		{"noon", at(2025, 3, 14, 12, 0, 0)},
		{"elevenses", at(2025, 3, 14, 11, 0, 0)},
		{"fika", at(2025, 3, 14, 15, 0, 0)},
		{"teatime", at(2025, 3, 14, 16, 0, 0)},
		{"NOON", at(2025, 3, 14, 12, 0, 0)},
		// Named days; a day alone is its midnight.
		{"today", at(2025, 3, 14, 0, 0, 0)},
		{"tomorrow", at(2025, 3, 15, 0, 0, 0)},
		{"tomorrow noon", at(2025, 3, 15, 12, 0, 0)},
		{"today 9:00", at(2025, 3, 14, 9, 0, 0)},
		// now[+-count[unit]], seconds by default.
		{"now", at(2025, 3, 14, 10, 30, 15)},
		{"now+60", at(2025, 3, 14, 10, 31, 15)},
		{"now+1hour", at(2025, 3, 14, 11, 30, 15)},
		{"now+2hours", at(2025, 3, 14, 12, 30, 15)},
		{"now + 3 days", at(2025, 3, 17, 10, 30, 15)},
		{"now+1week", at(2025, 3, 21, 10, 30, 15)},
		{"now-10minutes", at(2025, 3, 14, 10, 20, 15)},
		{"Now+1HOUR", at(2025, 3, 14, 11, 30, 15)},
		// YYYY-MM-DD[THH:MM[:SS]].
		{"2025-03-20", at(2025, 3, 20, 0, 0, 0)},
		{"2025-03-20T08:15", at(2025, 3, 20, 8, 15, 0)},
		{"2025-03-20T08:15:30", at(2025, 3, 20, 8, 15, 30)},
		{"2025-03-20t08:15", at(2025, 3, 20, 8, 15, 0)},
		{"2010-01-20T12:34:00", at(2010, 1, 20, 12, 34, 0)}, // sbatch(1)'s example; the past is allowed
		{"2028-02-29", at(2028, 2, 29, 0, 0, 0)},
		// MMDD[YY], MM/DD[/YY], MM.DD[.YY]: the next such date.
		{"0320", at(2025, 3, 20, 0, 0, 0)},
		{"032026", at(2026, 3, 20, 0, 0, 0)},
		{"03/20", at(2025, 3, 20, 0, 0, 0)},
		{"3/20", at(2025, 3, 20, 0, 0, 0)},
		{"03/20/26", at(2026, 3, 20, 0, 0, 0)},
		{"03.20.26", at(2026, 3, 20, 0, 0, 0)},
		{"01/10", at(2026, 1, 10, 0, 0, 0)},
		{"03/14", at(2026, 3, 14, 0, 0, 0)}, // today's midnight has passed
		{"03/14-11:00", at(2025, 3, 14, 11, 0, 0)},
		{"03/20-08:00", at(2025, 3, 20, 8, 0, 0)},
		{"12/31/99", at(2099, 12, 31, 0, 0, 0)},
	}
	for _, tt := range tests {
		got, err := parseBegin(tt.in, testNow)
		if err != nil || !got.Equal(tt.want) || got.Location() != testNow.Location() {
			t.Errorf("parseBegin(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{
		"", "  ", "25:00", "10:60", "10:5", "10:00:60", "1a:00", "13:00pm", "now+", "now+1h", "now16:00",
		"now+hours", "yesterday", "2025-13-01", "2025-02-30", "2025-04-31", "13/01", "00/10", "10/32",
		"10/10/2", "1:00 xm", "now+9999999999999999999", "now+1000000weeks", "2025-3-01", "T", "-",
	} {
		if got, err := parseBegin(in, testNow); err == nil {
			t.Errorf("parseBegin(%q) = %v, want an error", in, got)
		}
	}
}
