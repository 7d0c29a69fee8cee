package records

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/blob"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// SweepContent removes what uploads left behind: temporary files and
// incomplete multipart uploads, and objects no committed Binary version
// names (an upload whose commit failed, or a process killed between the
// object and the commit). An object is pending until the version its key
// names is committed and names it; only objects older than grace are
// looked at, so an upload about to commit is left alone.
func (s *Service) SweepContent(ctx context.Context, grace time.Duration) (removed int, err error) {
	if s.content.Objects == nil {
		return 0, nil
	}
	cutoff := s.now().Add(-grace)
	n, err := s.content.Objects.CleanTemp(ctx, cutoff)
	if err != nil {
		return n, err
	}
	removed = n
	var stray []string
	err = s.content.Objects.List(ctx, "b/", func(o blob.Object) error {
		if !o.Modified.Before(cutoff) {
			return nil
		}
		named, err := s.named(ctx, o.Key)
		if err != nil {
			return err
		}
		if !named {
			stray = append(stray, o.Key)
		}
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("sweep content: %w", err)
	}
	locked := 0
	for _, k := range stray {
		err := s.content.Objects.Delete(ctx, k)
		switch {
		case errors.Is(err, blob.ErrLocked):
			// Under object lock retention: kept, and tried again by every
			// sweep until the retention ends. (Erased content among them
			// is unreadable already: its key is destroyed.)
			locked++
			continue
		case err != nil && !errors.Is(err, blob.ErrNotFound):
			return removed, fmt.Errorf("sweep content: %w", err)
		}
		removed++
	}
	if locked > 0 {
		// A count only: keys name tenants and Binaries, not for a log.
		return removed, fmt.Errorf("sweep content: %d stray objects under retention kept for a later sweep: %w", locked, blob.ErrLocked)
	}
	return removed, nil
}

// named reports whether a committed Binary version names object key.
func (s *Service) named(ctx context.Context, key string) (bool, error) {
	tenant, id, version, ok := parseObjectKey(key)
	if !ok {
		return false, nil
	}
	v, err := s.st.Version(ctx, tenant, "Binary", id, version)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	case v.Deleted:
		return false, nil
	}
	plain, err := s.open(ctx, v)
	if errors.Is(err, problem.ErrGone) {
		// Erased (its patient's key destroyed): nothing can ever read
		// the version or its object, which the erasure deletes, or, when
		// object lock refused that, every sweep tries again.
		return false, nil
	}
	if err != nil {
		return true, nil // unreadable: keep it for a person to look at
	}
	res, err := fhir.Parse(plain)
	if err != nil {
		return true, nil
	}
	return binaryMeta(res.Doc).Object == key, nil
}
