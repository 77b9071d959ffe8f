package payout

import "github.com/hashforge/hashforge/record"

// PPSValuer returns the function the ledger's batch hook uses to value a
// committed share batch under PPS (ledger.PPSCredits(payout.PPSValuer(…))).
// subsidyInterval is the chain's SubsidyReductionInterval.
func PPSValuer(feeBPS int, subsidyInterval int32) func([]record.Share) (map[string]int64, error) {
	return func(shares []record.Share) (map[string]int64, error) {
		ps := make([]PPSShare, len(shares))
		for i, s := range shares {
			ps[i] = PPSShare{Address: s.Address, Difficulty: s.Difficulty, NetworkDifficulty: s.NetworkDifficulty, Height: s.Height}
		}
		return PPSCredits(ps, feeBPS, subsidyInterval)
	}
}
