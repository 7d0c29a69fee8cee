package sqlstore

import (
	"container/list"
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the read pool's prepared statements by SQL text, least
// recently used out first. For an embedded database preparing a search
// statement (parsing and planning its subqueries) costs about as much as
// running it; the texts repeat, since values are always parameters.
// database/sql prepares a Stmt on each connection it runs on and keeps
// it; closing an evicted Stmt waits for the queries still using it.
type stmtCache struct {
	db  *sql.DB
	max int

	mu  sync.Mutex
	lru *list.List // of *cached, most recent first
	m   map[string]*list.Element
}

type cached struct {
	query string
	stmt  *sql.Stmt
}

func newStmtCache(db *sql.DB, max int) *stmtCache {
	return &stmtCache{db: db, max: max, lru: list.New(), m: map[string]*list.Element{}}
}

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	if e, ok := c.m[query]; ok {
		c.lru.MoveToFront(e)
		st := e.Value.(*cached).stmt
		c.mu.Unlock()
		return st, nil
	}
	c.mu.Unlock()
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[query]; ok {
		// Prepared twice concurrently: keep the first.
		st.Close()
		c.lru.MoveToFront(e)
		return e.Value.(*cached).stmt, nil
	}
	c.m[query] = c.lru.PushFront(&cached{query, st})
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*cached)
		delete(c.m, old.query)
		old.stmt.Close()
	}
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*cached).stmt.Close()
	}
	c.lru.Init()
	c.m = map[string]*list.Element{}
}

// query runs a read through the statement cache when the dialect keeps
// one, and directly otherwise (the PostgreSQL driver caches its own).
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = db.d.Placeholders(query)
	if db.stmts == nil {
		return db.read.QueryContext(ctx, query, args...)
	}
	st, err := db.stmts.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query = db.d.Placeholders(query)
	if db.stmts == nil {
		return db.read.QueryRowContext(ctx, query, args...)
	}
	st, err := db.stmts.get(ctx, query)
	if err != nil {
		// Let the direct call report the error the way a query would.
		return db.read.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
