package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// recorder remembers every variable Load looks up, so the list of known
// names comes from the lookups themselves: a setting added to Load is
// known without being listed anywhere else.
type recorder struct {
	getenv func(string) string
	names  map[string]bool
}

func (r *recorder) get(name string) string {
	r.names[name] = true
	return r.getenv(name)
}

// UnknownVariables names the TESSERA_* variables of environ (os.Environ's
// form, NAME=value) that Load did not read: most likely misspelt, and
// silently ignored otherwise. Each comes with the closest known name.
// TESSERA_TEST_* belong to the tests and are left out, and so are the
// alsoKnown names, read by commands other than serve (such as bench).
func (c *Config) UnknownVariables(environ []string, alsoKnown ...string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "TESSERA_") || strings.HasPrefix(name, "TESSERA_TEST_") || c.known[name] || slices.Contains(alsoKnown, name) {
			continue
		}
		msg := name + " is not a Tessera setting and is ignored"
		if guess := closest(name, c.known); guess != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", guess)
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

// closest is the known name nearest to name in edits, if near enough to
// be a typo: at most a third of the differing part.
func closest(name string, known map[string]bool) string {
	best, bestDist := "", 0
	for k := range known {
		d := editDistance(name, k)
		if best == "" || d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	if best == "" || bestDist > max(2, (len(name)-len("TESSERA_"))/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
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
