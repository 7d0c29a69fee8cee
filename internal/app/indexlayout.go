package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/wardhealth/ward/internal/store"
)

// IndexLayoutCursor names the saved layout version of the search index
// (a ledger-consumer cursor row: seq is the version, no state).
const IndexLayoutCursor = "index-layout"

// indexLayout is the search index's layout version. 2: blinded strings in
// search_prefix (migration 00045), whose keyed hashes SQL cannot compute,
// so the rows of resources written before it come from a reindex.
const indexLayout = 2

// EnsureIndexLayout rebuilds the search index once after an upgrade that
// changed its layout, before the node serves: without it, searches on
// names, addresses, birth dates, phones and e-mails would silently miss
// every resource written before the upgrade. A database with no resources
// (a new one) is only marked. `ward reindex` marks it too, so an operator
// can run the rebuild ahead of the upgrade's first start.
func (a *App) EnsureIndexLayout(ctx context.Context, log *slog.Logger) error {
	v, _, err := a.Store.Cursor(ctx, IndexLayoutCursor)
	if err != nil {
		return fmt.Errorf("index layout: %w", err)
	}
	if v >= indexLayout {
		return nil
	}
	some, err := a.Store.Resources(ctx, 0, 1)
	if err != nil {
		return fmt.Errorf("index layout: %w", err)
	}
	if len(some) > 0 {
		log.Info("rebuilding the search index for its new layout before serving (once; see docs/operations.md)")
		n, err := a.Records.Reindex(ctx, "startup-reindex", func(n int) {
			if n%50000 == 0 {
				log.Info("search index rebuild", "resources", n)
			}
		})
		if err != nil {
			return fmt.Errorf("index layout: %w", err)
		}
		log.Info("search index rebuilt", "resources", n)
	}
	return MarkIndexLayout(ctx, a.Store)
}

// MarkIndexLayout records that every current resource is indexed in
// today's layout (after a full reindex).
func MarkIndexLayout(ctx context.Context, st store.Store) error {
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.SaveCursor{Name: IndexLayoutCursor, Seq: indexLayout}}}); err != nil {
		return fmt.Errorf("index layout: mark: %w", err)
	}
	return nil
}
