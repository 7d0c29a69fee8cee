// Package value holds the value semantics of FHIR R4 search shared by the
// index (what a resource's values become) and the query (what a search
// value means): string normalization, the ranges that partial dates and
// decimal precision imply, and comparison prefixes.
//
// Guarantees: every function is pure and total (bad input is an error,
// never a panic); a date or number parsed here and the same value indexed
// through here compare as the FHIR R4 search page says (tested in
// value_test.go against the page's own examples).
package value

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Normalize folds a string for FHIR string search: compatibility-decomposed (ligatures and the like split) with
// combining marks removed (accent-insensitive), lower-cased
// (case-insensitive), punctuation other than letters and digits turned into
// spaces, and runs of spaces collapsed. "Chalmers-O'Neil" and "chalmers o
// neil" normalize alike, which is what a clinician typing a name expects.
func Normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range norm.NFKD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToLower(r))
		default:
			space = true
		}
	}
	return b.String()
}

// Precision of a date value.
type Precision int

// Date precisions, coarsest first.
const (
	Year Precision = iota + 1
	Month
	Day
	Minute
	Second
	Fraction
)

// Range is a closed interval of time in Unix microseconds. Open ends are
// math.MinInt64 and math.MaxInt64.
type Range struct {
	Lo, Hi    int64
	Precision Precision
}

// Unbounded ends of a Range.
const (
	Min = math.MinInt64
	Max = math.MaxInt64
)

// ErrDate is wrapped by every date parsing error.
var ErrDate = errors.New("not a valid FHIR date")

// ParseDate parses a FHIR date, dateTime or instant (YYYY, YYYY-MM,
// YYYY-MM-DD, or a date and time to the minute, second or fraction, with Z
// or an offset) into the range of instants it covers. A time without a
// zone is taken as UTC.
func ParseDate(s string) (Range, error) {
	bad := func(why string) (Range, error) { return Range{}, fmt.Errorf("%w (%s)", ErrDate, why) }
	if len(s) < 4 || len(s) > 40 {
		return bad("expected YYYY, YYYY-MM, YYYY-MM-DD or a dateTime")
	}
	digits := func(t string) bool {
		for i := 0; i < len(t); i++ {
			if t[i] < '0' || t[i] > '9' {
				return false
			}
		}
		return true
	}
	if !digits(s[:4]) {
		return bad("the year must be four digits")
	}
	y, _ := strconv.Atoi(s[:4])
	if len(s) == 4 {
		lo := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		return span(lo, lo.AddDate(1, 0, 0), Year), nil
	}
	if len(s) < 7 || s[4] != '-' || !digits(s[5:7]) {
		return bad("expected YYYY-MM after the year")
	}
	m, _ := strconv.Atoi(s[5:7])
	if m < 1 || m > 12 {
		return bad("month out of range")
	}
	if len(s) == 7 {
		lo := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC)
		return span(lo, lo.AddDate(0, 1, 0), Month), nil
	}
	if len(s) < 10 || s[7] != '-' || !digits(s[8:10]) {
		return bad("expected YYYY-MM-DD")
	}
	d, _ := strconv.Atoi(s[8:10])
	if d < 1 || d > daysIn(y, time.Month(m)) {
		return bad("day out of range")
	}
	if len(s) == 10 {
		lo := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
		return span(lo, lo.AddDate(0, 0, 1), Day), nil
	}
	if s[10] != 'T' {
		return bad("expected T between date and time")
	}
	rest := s[11:]
	zone := time.UTC
	switch {
	case strings.HasSuffix(rest, "Z"):
		rest = rest[:len(rest)-1]
	case len(rest) > 6 && (rest[len(rest)-6] == '+' || rest[len(rest)-6] == '-') && rest[len(rest)-3] == ':':
		off := rest[len(rest)-6:]
		rest = rest[:len(rest)-6]
		if !digits(off[1:3]) || !digits(off[4:6]) {
			return bad("bad time zone offset")
		}
		oh, _ := strconv.Atoi(off[1:3])
		om, _ := strconv.Atoi(off[4:6])
		if oh > 14 || om > 59 {
			return bad("time zone offset out of range")
		}
		secs := oh*3600 + om*60
		if off[0] == '-' {
			secs = -secs
		}
		zone = time.FixedZone("", secs)
	}
	if len(rest) < 5 || !digits(rest[0:2]) || rest[2] != ':' || !digits(rest[3:5]) {
		return bad("expected hh:mm")
	}
	hh, _ := strconv.Atoi(rest[0:2])
	mm, _ := strconv.Atoi(rest[3:5])
	ss, nanos := 0, 0
	prec := Minute
	unit := time.Minute
	if len(rest) > 5 {
		if len(rest) < 8 || rest[5] != ':' || !digits(rest[6:8]) {
			return bad("expected hh:mm:ss")
		}
		ss, _ = strconv.Atoi(rest[6:8])
		prec, unit = Second, time.Second
		if len(rest) > 8 {
			frac := rest[9:]
			if rest[8] != '.' || frac == "" || len(frac) > 9 || !digits(frac) {
				return bad("bad fraction of a second")
			}
			n, _ := strconv.Atoi(frac + strings.Repeat("0", 9-len(frac)))
			nanos = n
			prec = Fraction
			unit = time.Duration(math.Pow10(9 - len(frac)))
			if unit < time.Microsecond {
				unit = time.Microsecond
			}
		}
	}
	if hh > 23 || mm > 59 || ss > 60 {
		return bad("time out of range")
	}
	if ss == 60 {
		ss = 59 // a leap second is the last second of its minute
	}
	lo := time.Date(y, time.Month(m), d, hh, mm, ss, nanos, zone)
	return span(lo, lo.Add(unit), prec), nil
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// span is [lo, end) as a closed microsecond range.
func span(lo, end time.Time, p Precision) Range {
	return Range{Lo: lo.UnixMicro(), Hi: end.UnixMicro() - 1, Precision: p}
}

// Prefix is a FHIR search comparison prefix.
type Prefix string

// The R4 prefixes.
const (
	EQ Prefix = "eq"
	NE Prefix = "ne"
	GT Prefix = "gt"
	LT Prefix = "lt"
	GE Prefix = "ge"
	LE Prefix = "le"
	SA Prefix = "sa"
	EB Prefix = "eb"
	AP Prefix = "ap"
)

// SplitPrefix separates a leading prefix from an ordered value ("ge2020"
// -> ge, "2020"). A value that starts with two letters that are not a
// prefix is an error: "gx2020" is a typo, not a date.
func SplitPrefix(s string) (Prefix, string, error) {
	if len(s) >= 2 && isLower(s[0]) && isLower(s[1]) {
		switch p := Prefix(s[:2]); p {
		case EQ, NE, GT, LT, GE, LE, SA, EB, AP:
			return p, s[2:], nil
		default:
			return "", "", errors.New("a value starts with two letters that are not a prefix (use eq, ne, gt, lt, ge, le, sa, eb or ap)")
		}
	}
	return EQ, s, nil
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

// Number is a decimal search value with the interval its precision
// implies: "100" is [99.5, 100.5), "100.00" is [99.995, 100.005), "1e2" is
// [50, 150).
type Number struct {
	Value  float64
	Lo, Hi float64 // Lo inclusive, Hi exclusive
}

// ErrNumber is wrapped by every number parsing error.
var ErrNumber = errors.New("not a valid number")

// ParseNumber parses a FHIR decimal (optionally in exponent notation).
func ParseNumber(s string) (Number, error) {
	if s == "" || len(s) > 64 {
		return Number{}, fmt.Errorf("%w: empty or too long", ErrNumber)
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 300 || e < -300 {
			return Number{}, fmt.Errorf("%w: bad exponent", ErrNumber)
		}
		mant, exp = s[:i], e
	}
	body := strings.TrimLeft(mant, "+-")
	if body == "" || strings.Count(body, ".") > 1 || strings.Trim(body, "0123456789.") != "" || body == "." {
		return Number{}, ErrNumber
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return Number{}, ErrNumber
	}
	decimals := 0
	if i := strings.IndexByte(body, '.'); i >= 0 {
		decimals = len(body) - i - 1
	}
	half := 0.5 * math.Pow10(exp-decimals)
	return Number{Value: v, Lo: v - half, Hi: v + half}, nil
}
