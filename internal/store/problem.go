package store

import (
	"errors"
	"fmt"

	"github.com/wardhealth/ward/internal/problem"
)

// classes is the one table from the store's sentinels to problem classes.
// Anything not listed (a database failure, ErrUnavailable, ErrClosed) is
// problem.ErrUnavailable.
var classes = []struct{ store, problem error }{
	{ErrNotFound, problem.ErrNotFound},
	{ErrConflict, problem.ErrConflict},
}

// Problem maps a storage error to the problem class the layers above
// report: ErrNotFound is problem.ErrNotFound, ErrConflict
// problem.ErrConflict, anything else problem.ErrUnavailable (nothing is
// disclosed). The storage error is kept as text only, so that nothing above
// tests the store's sentinels through it. Problem(nil) is nil.
func Problem(err error) error {
	if err == nil {
		return nil
	}
	class := problem.ErrUnavailable
	for _, c := range classes {
		if errors.Is(err, c.store) {
			class = c.problem
			break
		}
	}
	return fmt.Errorf("%w: %v", class, err)
}
