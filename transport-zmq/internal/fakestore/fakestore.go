// Package fakestore is a scriptable zmqserver.Store for tests: it can fail,
// panic or block on demand, and returns Get results in reverse insertion
// order so that the server's ordering guarantee is exercised. Tests only.
package fakestore

import (
	"context"
	"slices"
	"sync"

	cidstore "github.com/cidstore/cidstore/core"
)

// Store is a map-backed store. Set the exported fields before the server
// starts; they are read without locking.
type Store struct {
	// Err, when set, is returned by every call.
	Err error
	// Panic makes every call panic.
	Panic bool
	// Gate, when set, makes every mutation wait until it can receive from
	// Gate (or ctx is done); Entered, when set, gets a value as each
	// mutation starts waiting.
	Gate    chan struct{}
	Entered chan struct{}
	// StatsValue is returned by Stats.
	StatsValue cidstore.Stats

	mu sync.Mutex
	m  map[cidstore.E][]cidstore.E
}

// New returns an empty Store.
func New() *Store { return &Store{m: make(map[cidstore.E][]cidstore.E)} }

func (s *Store) enter(ctx context.Context, mutation bool) error {
	if s.Panic {
		panic("fakestore: scripted panic")
	}
	if s.Err != nil {
		return s.Err
	}
	if mutation && s.Gate != nil {
		if s.Entered != nil {
			s.Entered <- struct{}{}
		}
		select {
		case <-s.Gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *Store) insert(k, v cidstore.E) {
	if !slices.Contains(s.m[k], v) {
		s.m[k] = append(s.m[k], v)
	}
}

func (s *Store) Insert(ctx context.Context, k, v cidstore.E) error {
	if err := s.enter(ctx, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.insert(k, v)
	return nil
}

func (s *Store) InsertBatch(ctx context.Context, pairs []cidstore.Pair) error {
	if err := s.enter(ctx, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pairs {
		s.insert(p.Key, p.Value)
	}
	return nil
}

// Get returns the values newest first (not sorted: the server must sort).
// It returns nil, not an empty slice, for an absent key, so the server's
// "[] not nil" rule is exercised too.
func (s *Store) Get(ctx context.Context, k cidstore.E) ([]cidstore.E, error) {
	if err := s.enter(ctx, false); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := slices.Clone(s.m[k])
	slices.Reverse(vals)
	return vals, nil
}

func (s *Store) Delete(ctx context.Context, k cidstore.E) error {
	if err := s.enter(ctx, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *Store) DeleteValue(ctx context.Context, k, v cidstore.E) error {
	if err := s.enter(ctx, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = slices.DeleteFunc(s.m[k], func(x cidstore.E) bool { return x == v })
	if len(s.m[k]) == 0 {
		delete(s.m, k)
	}
	return nil
}

func (s *Store) DeleteBatch(ctx context.Context, dels []cidstore.Deletion) error {
	if err := s.enter(ctx, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range dels {
		if d.Value.IsZero() {
			delete(s.m, d.Key)
			continue
		}
		s.m[d.Key] = slices.DeleteFunc(s.m[d.Key], func(x cidstore.E) bool { return x == d.Value })
	}
	return nil
}

func (s *Store) Stats() cidstore.Stats { return s.StatsValue }
