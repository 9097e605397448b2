package memstore_test

import (
	"testing"

	"github.com/cidstore/cidstore/core/port"
	"github.com/cidstore/cidstore/core/port/porttest"
	memstore "github.com/cidstore/cidstore/storage-mem"
)

func TestContractVolatile(t *testing.T) {
	porttest.Run(t, func(t *testing.T, path string) port.Backend { return memstore.New() })
}

func TestContractDurable(t *testing.T) {
	open := func(t *testing.T, path string) port.Backend {
		s, err := memstore.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	porttest.Run(t, open, open)
}
