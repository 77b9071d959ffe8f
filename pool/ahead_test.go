package pool

import (
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

// waitJob waits for Run to make a job other than not.
func waitJob(t *testing.T, tp *testPool, not *Job) *Job {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if j := tp.srv.jobs.Current(); j != nil && j != not {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatal("no new job")
		}
	}
}

func TestWorkAheadOfTheNode(t *testing.T) {
	tp, templates := runTestPool(t)
	base := testTemplate(t, 300, 5, true)
	templates <- base
	first := waitJob(t, tp, nil)

	// Another node's block on our tip: an empty job on it at once.
	next := strings.Repeat("0", 8) + strings.Repeat("cd", 28)
	tp.srv.ExternalBlock(AnnouncedBlock{Height: 300, Hash: next, PrevHash: base.PreviousBlockHash.String(), Time: base.CurTime + 5})
	ahead := waitJob(t, tp, first)
	if !ahead.ahead || !ahead.Clean || ahead.Height != 301 || ahead.prevDisplay != next || len(ahead.txData) != 0 ||
		ahead.coinbaseVal != subsidy(301, chaincfg.RegressionNetParams.SubsidyReductionInterval) || ahead.bits != base.Bits {
		t.Fatalf("ahead job: ahead %v clean %v height %d prev %s txs %d value %d bits %x", ahead.ahead, ahead.Clean,
			ahead.Height, ahead.prevDisplay, len(ahead.txData), ahead.coinbaseVal, ahead.bits)
	}
	if ahead.minNTime <= uint32(base.CurTime+5) {
		t.Fatalf("ahead job's ntime floor %d is not past the announced block's time", ahead.minNTime)
	}

	// An announcement that does not build on our tip changes nothing.
	tp.srv.ExternalBlock(AnnouncedBlock{Height: 300, Hash: strings.Repeat("ef", 32), PrevHash: base.PreviousBlockHash.String()})
	tp.srv.ExternalBlock(AnnouncedBlock{Height: 301, Hash: strings.Repeat("ef", 32), PrevHash: strings.Repeat("12", 32)})

	// The node's template on the same tip replaces the empty job at once
	// (no refresh coalescing), clean, with its transactions.
	own := testTemplate(t, 301, 3, true)
	own.PreviousBlockHash = hashOf(t, next)
	templates <- own
	full := waitJob(t, tp, ahead)
	if full.ahead || !full.Clean || full.Height != 301 || len(full.txData) != 3 {
		t.Fatalf("node's job: ahead %v clean %v height %d txs %d", full.ahead, full.Clean, full.Height, len(full.txData))
	}
}

func TestAheadTemplateRefusesUnknowableBits(t *testing.T) {
	tp := newTestPool(t, func(c *Config) {
		c.Network = &chaincfg.MainNetParams
		c.PoolAddress = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
	})
	base := testTemplate(t, 2015, 0, false) // the next block (2016) retargets
	if !tp.srv.publish(base, true) {
		t.Fatal("publish")
	}
	cur := tp.srv.jobs.Current()
	b := AnnouncedBlock{Height: 2015, Hash: strings.Repeat("0", 8) + strings.Repeat("cd", 28), PrevHash: cur.prevDisplay}
	if tp.srv.aheadTemplate(b, cur, base) != nil {
		t.Fatal("an empty job across a retarget")
	}
	base2 := testTemplate(t, 2016, 0, false)
	tp.srv.publish(base2, true)
	cur = tp.srv.jobs.Current()
	b.Height, b.PrevHash = 2016, cur.prevDisplay
	if got := tp.srv.aheadTemplate(b, cur, base2); got == nil || got.CoinbaseValue != 50_0000_0000 {
		t.Fatalf("mid-period: %+v", got)
	}
}

func TestSubsidy(t *testing.T) {
	for _, c := range []struct{ h, want int64 }{{0, 50_0000_0000}, {209_999, 50_0000_0000}, {210_000, 25_0000_0000},
		{840_000, 3_1250_0000}, {64 * 210_000, 0}} {
		if got := subsidy(c.h, 210_000); got != c.want {
			t.Errorf("subsidy(%d) = %d, want %d", c.h, got, c.want)
		}
	}
}
