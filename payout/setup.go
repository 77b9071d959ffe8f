package payout

import "github.com/hashforge/hashforge/record"

// Service is a pool's payout policy in the form serve and `hashforge payout
// run` wire it: the processor, and what its scheme decides outside this
// package, taken from the processor's parsed configuration (never from
// raw flag text).
type Service struct {
	Processor *Processor
	// Terms are the scheme and fee every found block is recorded with.
	Terms Terms
	// Solo makes package pool pay each finder in its block's coinbase,
	// less the fee SoloSplit takes (nil: no fee) for SoloFeeAddress.
	Solo           bool
	SoloSplit      func(value int64) (finder, fee int64, err error)
	SoloFeeAddress string
	// ShareValuer values each committed share batch under PPS (the
	// ledger's batch hook, ledger.PPSCredits); nil for the other schemes.
	ShareValuer func([]record.Share) (map[string]int64, error)
}

// Setup makes the processor from cfg (see New) and derives the rest of
// the pool's payout wiring from its configuration, defaults applied.
// subsidyInterval is the chain's SubsidyReductionInterval (PPS values
// shares by the block subsidy).
func Setup(cfg Config, subsidyInterval int32, store Store, chain Chain, wallet Wallet) (*Service, error) {
	p, err := New(cfg, store, chain, wallet)
	if err != nil {
		return nil, err
	}
	pc := p.Config()
	s := &Service{Processor: p, Terms: Terms{Scheme: pc.Scheme, FeeBPS: pc.FeeBPS}}
	switch pc.Scheme {
	case PPS:
		// PPS credits each share batch in its own transaction.
		s.ShareValuer = PPSValuer(pc.FeeBPS, subsidyInterval)
	case SOLO:
		s.Solo, s.SoloFeeAddress = true, pc.FeeAddress
		if fee := pc.FeeBPS; fee > 0 {
			s.SoloSplit = func(v int64) (int64, int64, error) { return SoloCoinbase(v, fee) }
		}
	}
	return s, nil
}
