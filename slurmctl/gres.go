package slurmctl

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseGRES parses a generic-resource request list as sbatch --gres takes it:
// "gpu", "gpu:2", "gpu:a100:2", comma-separated. A missing count means 1.
func ParseGRES(s string) ([]GRES, error) {
	var out []GRES
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("gres %q: empty entry; want name[:type][:count], e.g. gpu:a100:2", s)
		}
		g, err := parseGRESItem(item)
		if err != nil {
			return nil, fmt.Errorf("gres %q: %w", s, err)
		}
		out = append(out, g)
	}
	return out, nil
}

func parseGRESItem(item string) (GRES, error) {
	parts := strings.Split(item, ":")
	g := GRES{Name: parts[0], Count: 1}
	if g.Name == "" || len(parts) > 3 {
		return GRES{}, fmt.Errorf("%q: want name[:type][:count], e.g. gpu:a100:2", item)
	}
	rest := parts[1:]
	if len(rest) > 0 {
		last := rest[len(rest)-1]
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil && last != "" && last[0] >= '0' && last[0] <= '9' {
			// sbatch reads "gpu:2k" as 2048 GPUs and "gpu:2080ti" as a bad
			// count; neither is what a person means, so say so.
			if t := strings.TrimRight(last, "kKmMgGtTpP"); t != last && strings.Trim(t, "0123456789") == "" {
				return GRES{}, fmt.Errorf("%q: write the count %q in full, without a unit", item, last)
			}
			return GRES{}, fmt.Errorf("%q: %q is neither a plain count nor a type; write name:type:count, e.g. gpu:a100:2", item, last)
		}
		if err == nil {
			if n <= 0 {
				return GRES{}, fmt.Errorf("%q: count must be at least 1", item)
			}
			g.Count = n
			rest = rest[:len(rest)-1]
		}
	}
	switch len(rest) {
	case 0:
	case 1:
		g.Type = rest[0]
		if g.Type == "" {
			return GRES{}, fmt.Errorf("%q: empty type", item)
		}
	default:
		return GRES{}, fmt.Errorf("%q: count %q is not a positive number", item, rest[1])
	}
	return g, nil
}

// String renders g in Slurm's request form ("gpu:a100:2").
func (g GRES) String() string {
	s := g.Name
	if g.Type != "" {
		s += ":" + g.Type
	}
	return s + ":" + strconv.FormatInt(g.Count, 10)
}

func formatGRESList(gs []GRES) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = g.String()
	}
	return strings.Join(parts, ",")
}

// formatGPURequest renders a --gpus style value: "[type:]count".
func formatGPURequest(g GRES) string {
	if g.Type != "" {
		return g.Type + ":" + strconv.FormatInt(g.Count, 10)
	}
	return strconv.FormatInt(g.Count, 10)
}

// parseGRESInventory reads what slurmctld reports for a node, such as
// "gpu:a100:4(S:0)" or "gpu:a100:2(IDX:0-1),gpu:v100:0(IDX:N/A)". Entries it
// cannot read are dropped: inventory is informational, never a request.
func parseGRESInventory(s string) []GRES {
	var out []GRES
	depth := 0
	start := 0
	// Split on commas outside parentheses: "(IDX:0,2)" holds commas too.
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch s[i] {
			case '(':
				depth++
				continue
			case ')':
				depth--
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		item := s[start:i]
		start = i + 1
		if p := strings.IndexByte(item, '('); p >= 0 {
			item = item[:p]
		}
		if item == "" || item == "(null)" {
			continue
		}
		parts := strings.Split(item, ":")
		n, err := strconv.ParseInt(parts[len(parts)-1], 10, 64)
		if err != nil || len(parts) < 2 || len(parts) > 3 {
			continue
		}
		g := GRES{Name: parts[0], Count: n}
		if len(parts) == 3 {
			g.Type = parts[1]
		}
		out = append(out, g)
	}
	return out
}
