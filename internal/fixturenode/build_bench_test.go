package fixturenode

import (
	"testing"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// BenchmarkBuildTemplate is the work of every new block: 3,000
// transactions made, hashed and encoded once.
func BenchmarkBuildTemplate(b *testing.B) {
	for b.Loop() {
		if _, err := buildTemplate(chainhash.Hash{1}, 925000, 1, DefaultBits, DefaultTransactions, 1); err != nil {
			b.Fatal(err)
		}
	}
}
