package slurmctl

import (
	"strings"
	"testing"
)

func TestParseMemoryMB(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"512", 512},
		{"512M", 512},
		{"512m", 512},
		{"8G", 8192},
		{"8g", 8192},
		{"1T", 1 << 20},
		{"1024K", 1},
		{"1025K", 2}, // KiB round up to whole MiB, as Slurm does
		{"1k", 1},
		{"0", 0},
		{"0K", 0},
		{" 4G ", 4096},
		{"4GB", 4096}, // sbatch accepts a B after the unit
		{"4mb", 4},
		{"4KB", 1},
		{"8796093022207T", 8796093022207 << 20}, // the largest that fits
	}
	for _, tt := range tests {
		if got, err := ParseMemoryMB(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseMemoryMB(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", " ", "G", "8X", "8GX", "4B", "8 G", "-1", "-1G", "1.5G", "0x10", "8796093022208T", "99999999999999999999"} {
		got, err := ParseMemoryMB(in)
		if err == nil {
			t.Errorf("ParseMemoryMB(%q) = %d, want an error", in, got)
			continue
		}
		// The message quotes what the caller wrote, not what was left after
		// taking the suffix off.
		if !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("ParseMemoryMB(%q) error %q does not quote the input", in, err)
		}
	}
}

func TestParseTRES(t *testing.T) {
	got, err := ParseTRES("cpu=4,mem=8G,node=1,gres/gpu:a100=2")
	want := TRES{"cpu": 4, "mem": 8192, "node": 1, "gres/gpu:a100": 2}
	if err != nil || !got.Equal(want) {
		t.Errorf("ParseTRES = %v, %v; want %v", got, err, want)
	}
	if got.String() != "cpu=4,gres/gpu:a100=2,mem=8192,node=1" {
		t.Errorf("String() = %q", got.String())
	}
	for _, in := range []string{"cpu", "cpu=", "=4", "cpu=-1", "mem=8X"} {
		if _, err := ParseTRES(in); err == nil {
			t.Errorf("ParseTRES(%q) succeeded", in)
		}
	}
}
