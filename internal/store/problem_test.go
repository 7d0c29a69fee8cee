package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/wardhealth/ward/internal/problem"
)

func TestProblem(t *testing.T) {
	for _, tc := range []struct {
		err, want, notWant error
	}{
		{fmt.Errorf("read: %w", ErrNotFound), problem.ErrNotFound, ErrNotFound},
		{fmt.Errorf("commit: %w", ErrConflict), problem.ErrConflict, ErrConflict},
		{fmt.Errorf("commit: %w", ErrUnavailable), problem.ErrUnavailable, ErrUnavailable},
		{ErrClosed, problem.ErrUnavailable, ErrClosed},
		{errors.New("driver: connection reset"), problem.ErrUnavailable, nil},
	} {
		got := Problem(tc.err)
		if !errors.Is(got, tc.want) {
			t.Errorf("Problem(%v) = %v, want class %v", tc.err, got, tc.want)
		}
		if tc.notWant != nil && errors.Is(got, tc.notWant) {
			t.Errorf("Problem(%v) still exposes %v", tc.err, tc.notWant)
		}
	}
	if Problem(nil) != nil {
		t.Error("Problem(nil) != nil")
	}
}
