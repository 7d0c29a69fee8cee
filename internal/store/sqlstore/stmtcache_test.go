package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// TestStmtCache: one prepared statement per text, the least recently used
// evicted beyond the bound, and a statement evicted while its rows are
// being read still finishes them.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE n (x INTEGER); INSERT INTO n VALUES (1), (2), (3)`); err != nil {
		t.Fatal(err)
	}
	c := newStmtCache(db, 2)
	defer c.close()
	q := func(i int) string { return fmt.Sprintf("SELECT x + %d FROM n ORDER BY x", i) }
	a, err := c.get(ctx, q(0))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.get(ctx, q(0)); again != a {
		t.Fatal("the same text was prepared twice")
	}
	rows, err := a.QueryContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("no first row")
	}
	// Two more texts evict the first while its rows are open.
	for i := 1; i <= 2; i++ {
		if _, err := c.get(ctx, q(i)); err != nil {
			t.Fatal(err)
		}
	}
	if c.lru.Len() != 2 || c.m[q(0)] != nil {
		t.Fatalf("cache holds %d, first still cached: %v", c.lru.Len(), c.m[q(0)] != nil)
	}
	n := 1
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil || n != 3 {
		t.Fatalf("rows of an evicted statement: %d, %v", n, err)
	}
	rows.Close()
	if again, _ := c.get(ctx, q(0)); again == a {
		t.Fatal("an evicted statement was handed out again")
	}
	// The most recently used survives.
	if _, ok := c.m[q(2)]; !ok {
		t.Fatal("the most recently used statement was evicted")
	}
}
