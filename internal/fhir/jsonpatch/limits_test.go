package jsonpatch

import (
	"errors"
	"strings"
	"testing"
)

// opsOf joins n copies of op into a patch document.
func opsOf(op string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(op+",", n), ",") + "]"
}

func TestParseLimitedOps(t *testing.T) {
	op := `{"op":"test","path":"/a","value":1}`
	if _, err := ParseLimited([]byte(opsOf(op, 10)), 10); err != nil {
		t.Fatalf("10 operations at a bound of 10: %v", err)
	}
	_, err := ParseLimited([]byte(opsOf(op, 11)), 10)
	if !errors.Is(err, ErrTooCostly) || !strings.Contains(err.Error(), "more than 10 operations (WARD_PATCH_MAX_OPS)") {
		t.Fatalf("11 operations: %v", err)
	}
	// Counted before any operation is read: a bad one past the bound
	// does not matter.
	if _, err := ParseLimited([]byte(opsOf(op, 11)[:len(opsOf(op, 11))-1]+`,{"op":"nope"}]`), 10); !errors.Is(err, ErrTooCostly) {
		t.Fatalf("got %v", err)
	}
}

func TestApplyLimited(t *testing.T) {
	cases := []struct {
		name, doc, patch string
		lim              Limits
		// failAt is the operation refused (-1: none).
		failAt int
		diag   string
	}{
		// {"name":[{"family":"x"}]} has 4 values; each copy of /name
		// into /name/- doubles the array's values: 4, 7, 13, 25, 49, ...
		{"doubling refused at the crossing copy", `{"name":[{"family":"x"}]}`,
			opsOf(`{"op":"copy","from":"/name","path":"/name/-"}`, 25), Limits{Elements: 30}, 3, "more than 30 elements (WARD_PATCH_MAX_ELEMENTS)"},
		{"doubling within the bound", `{"name":[{"family":"x"}]}`,
			opsOf(`{"op":"copy","from":"/name","path":"/name/-"}`, 3), Limits{Elements: 30}, -1, ""},
		{"doubling via the root", `{"a":[]}`,
			opsOf(`{"op":"copy","from":"","path":"/a/-"}`, 25), Limits{Elements: 1000}, 8, "WARD_PATCH_MAX_ELEMENTS"},
		// Replacing a value many times does not add up.
		{"replace does not accumulate", `{"a":[1,2,3,4,5,6,7,8]}`,
			opsOf(`{"op":"replace","path":"/a","value":[1,2,3,4,5,6,7,8]}`, 100), Limits{Elements: 20}, -1, ""},
		{"replace array item does not accumulate", `{"a":[[1,2,3],1]}`,
			opsOf(`{"op":"replace","path":"/a/0","value":[1,2,3]}`, 100), Limits{Elements: 10}, -1, ""},
		{"add member over an existing one", `{"a":[1,2,3,4,5,6,7,8]}`,
			opsOf(`{"op":"add","path":"/a","value":[1,2,3,4,5,6,7,8]}`, 100), Limits{Elements: 20}, -1, ""},
		// Removing frees room for what follows.
		{"copy and remove", `{"a":[1,2,3,4,5,6,7,8]}`,
			opsOf(`{"op":"copy","from":"/a","path":"/b"},{"op":"remove","path":"/b"}`, 50), Limits{Elements: 20}, -1, ""},
		{"array items", `{"a":[1,2]}`,
			opsOf(`{"op":"add","path":"/a/-","value":1}`, 5), Limits{ArrayItems: 4}, 2, "more than 4 items (WARD_RESOURCE_MAX_ARRAY_ITEMS)"},
		{"array items: replace is not growth", `{"a":[1,2,3,4]}`,
			opsOf(`{"op":"replace","path":"/a/0","value":1}`, 5), Limits{ArrayItems: 4}, -1, ""},
		{"a large added value", `{}`,
			`[{"op":"add","path":"/a","value":[` + strings.TrimSuffix(strings.Repeat("1,", 100), ",") + `]}]`, Limits{Elements: 50}, 0, "WARD_PATCH_MAX_ELEMENTS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops, err := Parse([]byte(c.patch))
			if err != nil {
				t.Fatal(err)
			}
			out, err := ApplyLimited(decode(t, c.doc), ops, c.lim)
			if c.failAt < 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.lim.Elements > 0 && CountValues(out, -1) > c.lim.Elements {
					t.Fatalf("result has %d values", CountValues(out, -1))
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrTooCostly) || pe.Index != c.failAt || !strings.Contains(err.Error(), c.diag) {
				t.Fatalf("got %v, want operation %d refused naming %q", err, c.failAt, c.diag)
			}
		})
	}
}

// The doubling attack at a realistic bound costs the memory of the
// bound, not of 2^25 copies.
func TestApplyLimitedDoublingMemory(t *testing.T) {
	ops, err := Parse([]byte(opsOf(`{"op":"copy","from":"/name","path":"/name/-"}`, 25)))
	if err != nil {
		t.Fatal(err)
	}
	doc := decode(t, `{"resourceType":"Patient","name":[{"family":"x","given":["a","b"]}]}`)
	res := testing.Benchmark(func(b *testing.B) {
		for range b.N {
			if _, err := ApplyLimited(doc, ops, Limits{Elements: 100000}); !errors.Is(err, ErrTooCostly) {
				b.Fatalf("got %v", err)
			}
		}
	})
	if per := res.AllocedBytesPerOp(); per > 32<<20 {
		t.Errorf("refusing the doubling allocated %d bytes", per)
	}
}
