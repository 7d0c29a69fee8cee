package main

import (
	"fmt"
	"testing"
)

func TestGroupByDir(t *testing.T) {
	cases := []struct {
		in   []string
		want string
	}{
		{nil, "[]"},
		{[]string{"a.json"}, "[[a.json]]"},
		{[]string{"s/00-shared/a.json", "s/00-shared/b.json", "s/patients/c.json", "s/patients/d.json"},
			"[[s/00-shared/a.json s/00-shared/b.json] [s/patients/c.json s/patients/d.json]]"},
		{[]string{"x/a.json", "y/b.json", "x/c.json"}, "[[x/a.json] [y/b.json] [x/c.json]]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(groupByDir(c.in)); got != c.want {
			t.Errorf("groupByDir(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}
