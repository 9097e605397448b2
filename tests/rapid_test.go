package tests

import (
	"context"
	"slices"
	"testing"

	cidstore "github.com/cidstore/cidstore/core"
	memstore "github.com/cidstore/cidstore/storage-mem"
	"pgregory.net/rapid"
)

// TestRapidModel is the shrinking counterpart of TestModel: small key and
// value spaces, tiny buckets (so splits, merges and promotions happen within
// a few steps), and rapid minimizes any failing sequence.
func TestRapidModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		capacity := rapid.IntRange(4, 8).Draw(rt, "capacity")
		threshold := rapid.IntRange(1, 2).Draw(rt, "threshold")
		st, err := cidstore.Open(memstore.New(), cidstore.Options{BucketCapacity: capacity, PromotionThreshold: threshold, HashSeed: 3})
		if err != nil {
			rt.Fatal(err)
		}
		defer st.Close()
		m := model{}
		keyGen := rapid.Custom(func(t *rapid.T) cidstore.E {
			return cidstore.E{High: rapid.Uint64Range(0, 3).Draw(t, "kh"), Low: rapid.Uint64Range(1, 40).Draw(t, "kl")}
		})
		valGen := rapid.Custom(func(t *rapid.T) cidstore.E {
			return cidstore.E{High: 1, Low: rapid.Uint64Range(1, 12).Draw(t, "v")}
		})
		rt.Repeat(map[string]func(*rapid.T){
			"insert": func(t *rapid.T) {
				k, v := keyGen.Draw(t, "k"), valGen.Draw(t, "v")
				if err := st.Insert(ctx, k, v); err != nil {
					t.Fatal(err)
				}
				m.insert(k, v)
			},
			"batch": func(t *rapid.T) {
				pairs := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) cidstore.Pair {
					return cidstore.Pair{Key: keyGen.Draw(t, "k"), Value: valGen.Draw(t, "v")}
				}), 1, 30).Draw(t, "pairs")
				if err := st.InsertBatch(ctx, pairs); err != nil {
					t.Fatal(err)
				}
				for _, p := range pairs {
					m.insert(p.Key, p.Value)
				}
			},
			"delete": func(t *rapid.T) {
				k := keyGen.Draw(t, "k")
				if err := st.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
				delete(m, k)
			},
			"deleteValue": func(t *rapid.T) {
				k, v := keyGen.Draw(t, "k"), valGen.Draw(t, "v")
				if err := st.DeleteValue(ctx, k, v); err != nil {
					t.Fatal(err)
				}
				m.deleteValue(k, v)
			},
			"compact": func(t *rapid.T) {
				if err := st.Compact(ctx); err != nil {
					t.Fatal(err)
				}
			},
			"get": func(t *rapid.T) {
				k := keyGen.Draw(t, "k")
				got, err := st.Get(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				if want := m.get(k); !slices.Equal(got, want) {
					t.Fatalf("Get(%v) = %v, want %v", k, got, want)
				}
			},
			"": func(t *rapid.T) {
				if err := st.Validate(); err != nil {
					t.Fatal(err)
				}
			},
		})
	})
}
