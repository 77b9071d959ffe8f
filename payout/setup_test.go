package payout_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/record"
)

// unusedStore satisfies payout.Store for tests that never run the
// processor.
type unusedStore struct{ payout.Store }

// TestSetupWiring: what Setup hands serve for each scheme, from the
// parsed configuration: the terms blocks are recorded with, SOLO's
// coinbase split (exact in satoshis), PPS's share valuer.
func TestSetupWiring(t *testing.T) {
	const (
		feeAddr  = "fee-address"
		interval = 150 // regtest's SubsidyReductionInterval
	)
	shares := []record.Share{
		{Address: "A", Difficulty: 1024, NetworkDifficulty: 1e6, Height: 1},
		{Address: "B", Difficulty: 3, NetworkDifficulty: 7, Height: 2 * interval},
	}
	for _, c := range []struct {
		name   string
		cfg    payout.Config
		scheme payout.Scheme
		feeBPS int
	}{
		{"default", payout.Config{FeeAddress: feeAddr}, payout.PPLNS, payout.DefaultFeeBPS},
		{"pplns", payout.Config{Scheme: payout.PPLNS, FeeBPS: 150, FeeAddress: feeAddr}, payout.PPLNS, 150},
		{"prop", payout.Config{Scheme: " Prop ", FeeBPS: 150, FeeAddress: feeAddr}, payout.PROP, 150},
		{"pps", payout.Config{Scheme: payout.PPS, FeeBPS: 150}, payout.PPS, 150},
		{"pps default fee", payout.Config{Scheme: payout.PPS}, payout.PPS, payout.DefaultFeeBPS},
		{"solo", payout.Config{Scheme: "SOLO", FeeBPS: 150, FeeAddress: feeAddr}, payout.SOLO, 150},
		{"solo no fee", payout.Config{Scheme: payout.SOLO, NoFee: true}, payout.SOLO, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := payout.Setup(c.cfg, interval, unusedStore{}, fakeChain{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if pc := s.Processor.Config(); pc.Scheme != c.scheme || pc.FeeBPS != c.feeBPS {
				t.Fatalf("processor: scheme %s, fee %d bps; want %s, %d", pc.Scheme, pc.FeeBPS, c.scheme, c.feeBPS)
			}
			if want := (payout.Terms{Scheme: c.scheme, FeeBPS: c.feeBPS}); s.Terms != want {
				t.Fatalf("terms %+v, want %+v", s.Terms, want)
			}
			solo, pps := c.scheme == payout.SOLO, c.scheme == payout.PPS
			if s.Solo != solo || (s.ShareValuer != nil) != pps {
				t.Fatalf("solo %v, share valuer %v", s.Solo, s.ShareValuer != nil)
			}
			switch {
			case solo && c.feeBPS == 0:
				if s.SoloSplit != nil {
					t.Fatal("SOLO without a fee: want no split")
				}
			case solo:
				if s.SoloFeeAddress != feeAddr || s.SoloSplit == nil {
					t.Fatalf("SOLO fee to %q, split %v", s.SoloFeeAddress, s.SoloSplit != nil)
				}
				for _, v := range []int64{0, 1, 66, 67, 1_000_000, 5_000_012_345, payout.MaxMoney} {
					finder, fee, err := s.SoloSplit(v)
					if err != nil {
						t.Fatal(err)
					}
					// floor(v × 150 / 10000), the rest to the finder.
					if wantFee := v/10_000*150 + v%10_000*150/10_000; fee != wantFee || finder+fee != v {
						t.Fatalf("SOLO split of %d sat: finder %d, fee %d; want fee %d, sum exact", v, finder, fee, wantFee)
					}
				}
			default:
				if s.SoloSplit != nil || s.SoloFeeAddress != "" {
					t.Fatalf("%s: SOLO split set", c.scheme)
				}
			}
			if pps {
				got, err := s.ShareValuer(shares)
				if err != nil {
					t.Fatal(err)
				}
				ps := make([]payout.PPSShare, len(shares))
				for i, sh := range shares {
					ps[i] = payout.PPSShare{Address: sh.Address, Difficulty: sh.Difficulty, NetworkDifficulty: sh.NetworkDifficulty, Height: sh.Height}
				}
				want, err := payout.PPSCredits(ps, c.feeBPS, interval)
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(got, want) || got["A"] <= 0 || got["B"] <= 0 {
					t.Fatalf("PPS credits %v, want %v (fee %d bps, subsidy halving every %d)", got, want, c.feeBPS, interval)
				}
			}
		})
	}
	// The processor's own checks still apply.
	if _, err := payout.Setup(payout.Config{Scheme: payout.PPLNS, FeeBPS: 150}, interval, unusedStore{}, fakeChain{}, nil); err == nil || !strings.Contains(err.Error(), "fee address") {
		t.Fatalf("PPLNS fee without an address: %v", err)
	}
	if _, err := payout.Setup(payout.Config{Scheme: "fpps"}, interval, unusedStore{}, fakeChain{}, nil); err == nil {
		t.Fatal("unknown scheme: no error")
	}
}
