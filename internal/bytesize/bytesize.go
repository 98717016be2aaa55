// Package bytesize parses and prints sizes in bytes for command-line
// flags, so that every command accepts the same syntax: a positive number
// with an optional unit, B, K/KiB, M/MiB, G/GiB (powers of 1024) or KB,
// MB, GB (powers of 1000), in any case: "16MiB", "1048576", "64k".
package bytesize

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a size in bytes; *Size is a flag.Value.
type Size int

var units = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first, so "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

// Parse parses a positive size of at most 2GiB-1 bytes (the largest a
// message or a queue may be).
func Parse(v string) (int, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid size %q: want a positive number of bytes, optionally with a unit such as KiB or MiB", v)
	}
	if n > math.MaxInt32/mult {
		return 0, fmt.Errorf("size %q is too large (at most 2GiB-1)", v)
	}
	return int(n * mult), nil
}

// Format writes n with the largest binary unit that divides it exactly:
// 16777216 is "16MiB", 1000 is "1000".
func Format(n int) string {
	switch {
	case n > 0 && n%(1<<30) == 0:
		return strconv.Itoa(n>>30) + "GiB"
	case n > 0 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n > 0 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}

// Set implements flag.Value.
func (s *Size) Set(v string) error {
	n, err := Parse(v)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// String implements flag.Value.
func (s *Size) String() string { return Format(int(*s)) }

// Var defines a size flag on fs with the given default, stored in p, and
// a usage text that gives the syntax.
func Var(fs *flag.FlagSet, p *int, name string, def int, usage string) {
	*p = def
	fs.Var((*intSize)(p), name, usage+": a `SIZE` in bytes, or with a unit: KiB, MiB, GiB (K, M, G are the same), KB, MB, GB")
}

// intSize is a flag.Value over a plain int, for Var.
type intSize int

func (s *intSize) Set(v string) error { return (*Size)(s).Set(v) }
func (s *intSize) String() string     { return Format(int(*s)) }

var (
	_ flag.Value = (*Size)(nil)
	_ flag.Value = (*intSize)(nil)
)
