package value

import (
	"math"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Smith":             "smith",
		"  Élodie  MÜLLER ": "elodie muller",
		"Chalmers-O'Neil":   "chalmers o neil",
		"":                  "",
		"--":                "",
		"Ñandú 42":          "nandu 42",
		"São\tPaulo\n":      "sao paulo",
		"ǅemal":             "dzemal",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func micro(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

func TestParseDate(t *testing.T) {
	for _, c := range []struct {
		in     string
		lo, hi string
		p      Precision
	}{
		{"2013", "2013-01-01T00:00:00Z", "2013-12-31T23:59:59.999999Z", Year},
		{"2012-02", "2012-02-01T00:00:00Z", "2012-02-29T23:59:59.999999Z", Month},
		{"2013-01-14", "2013-01-14T00:00:00Z", "2013-01-14T23:59:59.999999Z", Day},
		{"2013-01-14T10:00", "2013-01-14T10:00:00Z", "2013-01-14T10:00:59.999999Z", Minute},
		{"2013-01-14T10:00:00Z", "2013-01-14T10:00:00Z", "2013-01-14T10:00:00.999999Z", Second},
		{"2013-01-14T10:00:00+02:00", "2013-01-14T08:00:00Z", "2013-01-14T08:00:00.999999Z", Second},
		{"2013-01-14T10:00:00.5-05:00", "2013-01-14T15:00:00.5Z", "2013-01-14T15:00:00.599999Z", Fraction},
		{"2013-01-14T10:00:00.123456789Z", "2013-01-14T10:00:00.123456Z", "2013-01-14T10:00:00.123456Z", Fraction},
	} {
		r, err := ParseDate(c.in)
		if err != nil {
			t.Errorf("ParseDate(%q): %v", c.in, err)
			continue
		}
		if r.Lo != micro(c.lo) || r.Hi != micro(c.hi) || r.Precision != c.p {
			t.Errorf("ParseDate(%q) = %v..%v p%d, want %s..%s p%d", c.in,
				time.UnixMicro(r.Lo).UTC(), time.UnixMicro(r.Hi).UTC(), r.Precision, c.lo, c.hi, c.p)
		}
	}
	for _, bad := range []string{"", "13", "2013-13", "2013-02-30", "2013-1-1", "20x3", "2013-01-14 10:00",
		"2013-01-14T25:00", "2013-01-14T10", "2013-01-14T10:00:00.Z", "2013-01-14T10:00:00+15:00", "2013-01-14T10:00:00.1234567890Z"} {
		if _, err := ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) accepted", bad)
		}
	}
}

func TestSplitPrefix(t *testing.T) {
	for in, want := range map[string][2]string{
		"ge2020": {"ge", "2020"}, "2020": {"eq", "2020"}, "ap5.4": {"ap", "5.4"}, "-5": {"eq", "-5"}, "eb1": {"eb", "1"},
	} {
		p, rest, err := SplitPrefix(in)
		if err != nil || string(p) != want[0] || rest != want[1] {
			t.Errorf("SplitPrefix(%q) = %q %q %v", in, p, rest, err)
		}
	}
	if _, _, err := SplitPrefix("gx2020"); err == nil {
		t.Error("gx accepted")
	}
}

func TestParseNumber(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for _, c := range []struct {
		in        string
		v, lo, hi float64
	}{
		{"100", 100, 99.5, 100.5},
		{"100.00", 100, 99.995, 100.005},
		{"1e2", 100, 50, 150},
		{"-5.5", -5.5, -5.55, -5.45},
		{"0.1", 0.1, 0.05, 0.15},
		{"1.5E-1", 0.15, 0.145, 0.155},
	} {
		n, err := ParseNumber(c.in)
		if err != nil || !near(n.Value, c.v) || !near(n.Lo, c.lo) || !near(n.Hi, c.hi) {
			t.Errorf("ParseNumber(%q) = %+v, %v", c.in, n, err)
		}
	}
	for _, bad := range []string{"", ".", "1..2", "abc", "1e", "1e999", "NaN", "Inf", "0x10", "1_000"} {
		if _, err := ParseNumber(bad); err == nil {
			t.Errorf("ParseNumber(%q) accepted", bad)
		}
	}
}
