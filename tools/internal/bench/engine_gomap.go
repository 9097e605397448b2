package bench

import (
	"slices"
	"sync"
)

var _ = register(EngineSpec{Name: "gomap", Durable: never, Open: openGoMap})

// goMap is the in-memory ceiling: a Go map from key to its values, kept
// sorted so that insertion checks duplicates (set semantics) by binary
// search and Get returns them ascending. A RWMutex makes it safe for one
// writer and many readers, as every other engine is.
type goMap struct {
	mu sync.RWMutex
	m  map[E][]E
}

func openGoMap(string, bool) (Engine, error) { return &goMap{m: make(map[E][]E)}, nil }

func (g *goMap) InsertBatch(pairs []Pair) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range pairs {
		vs := g.m[p.Key]
		i, found := slices.BinarySearchFunc(vs, p.Value, cmpE)
		if !found {
			g.m[p.Key] = slices.Insert(vs, i, p.Value)
		}
	}
	return nil
}

func (g *goMap) Get(key E) ([]E, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return slices.Clone(g.m[key]), nil
}

func (g *goMap) DeleteBatch(dels []Deletion) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, d := range dels {
		if d.Value.IsZero() {
			delete(g.m, d.Key)
			continue
		}
		vs := g.m[d.Key]
		i, found := slices.BinarySearchFunc(vs, d.Value, cmpE)
		switch {
		case !found:
		case len(vs) == 1:
			delete(g.m, d.Key)
		default:
			g.m[d.Key] = slices.Delete(vs, i, i+1)
		}
	}
	return nil
}

func (g *goMap) Close() error {
	g.mu.Lock()
	g.m = nil
	g.mu.Unlock()
	return nil
}
