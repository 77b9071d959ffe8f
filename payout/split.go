package payout

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"slices"
)

// MaxFeeBPS is 100 % in basis points.
const MaxFeeBPS = 10_000

// MaxMoney is the most satoshis that can ever exist; amounts above it are
// refused before any arithmetic, so no product below can overflow int64
// silently (it is checked anyway).
const MaxMoney = 21_000_000 * 100_000_000

// Weight is the work one address contributed to a block: the sum of the
// difficulties of its counted shares.
type Weight struct {
	Address    string
	Difficulty float64
}

// Credit is what one address receives from one block.
type Credit struct {
	Address string
	Kind    string // KindShare or KindFee
	Amount  int64  // satoshis
	Weight  float64
}

// Credit kinds, as stored in block_credits.kind.
const (
	KindShare = "share"
	KindFee   = "fee"
)

// PoolFee is the pool's cut of amount: floor(amount × bps / 10000). The
// floor means the fee never exceeds the advertised rate; the fraction of a
// satoshi it drops stays with the miners.
func PoolFee(amount int64, bps int) (int64, error) {
	if amount < 0 || amount > MaxMoney {
		return 0, fmt.Errorf("payout: amount %d sat outside 0..%d", amount, int64(MaxMoney))
	}
	if bps < 0 || bps > MaxFeeBPS {
		return 0, fmt.Errorf("payout: pool fee %d bps outside 0..%d", bps, MaxFeeBPS)
	}
	// 2.1e15 × 1e4 overflows int64; the 128-bit product does not.
	hi, lo := bits.Mul64(uint64(amount), uint64(bps))
	q, _ := bits.Div64(hi, lo, MaxFeeBPS)
	return int64(q), nil
}

// Split divides amount satoshis between weights in proportion to their
// difficulty, exactly: the credits always sum to amount.
//
// Each address first gets floor(amount × w / W), computed with exact
// rational arithmetic on the float64 weights (no rounding anywhere). The r
// satoshis that the floors leave over (r < number of addresses) go one
// each to the addresses with the largest dropped fractions, ties broken by
// the larger weight and then by the address in byte order (the
// largest-remainder method). Weights of one address are merged first;
// zero-weight addresses get nothing and no row.
func Split(amount int64, weights []Weight) ([]Credit, error) {
	if amount < 0 || amount > MaxMoney {
		return nil, fmt.Errorf("payout: amount %d sat outside 0..%d", amount, int64(MaxMoney))
	}
	merged := map[string]float64{}
	for _, w := range weights {
		if math.IsNaN(w.Difficulty) || math.IsInf(w.Difficulty, 0) || w.Difficulty < 0 {
			return nil, fmt.Errorf("payout: weight %v of %s", w.Difficulty, w.Address)
		}
		if w.Difficulty > 0 {
			merged[w.Address] += w.Difficulty
		}
	}
	if len(merged) == 0 {
		if amount == 0 {
			return nil, nil
		}
		return nil, ErrNoShares
	}

	type part struct {
		addr   string
		weight float64
		w      *big.Rat
		floor  int64
		frac   *big.Rat // the dropped fraction of a satoshi, in [0, 1)
	}
	parts := make([]part, 0, len(merged))
	total := new(big.Rat)
	for a, d := range merged {
		w := new(big.Rat).SetFloat64(d) // exact: every finite float64 is a rational
		parts = append(parts, part{addr: a, weight: d, w: w})
		total.Add(total, w)
	}
	amt := new(big.Rat).SetInt64(amount)
	var given int64
	for i := range parts {
		share := new(big.Rat).Mul(amt, parts[i].w)
		share.Quo(share, total)
		q := new(big.Int).Quo(share.Num(), share.Denom()) // floor: share ≥ 0
		parts[i].floor = q.Int64()
		parts[i].frac = share.Sub(share, new(big.Rat).SetInt(q))
		given += parts[i].floor
	}
	slices.SortFunc(parts, func(x, y part) int {
		return cmp.Or(
			y.frac.Cmp(x.frac),
			cmp.Compare(y.weight, x.weight),
			cmp.Compare(x.addr, y.addr),
		)
	})
	rest := amount - given
	if rest < 0 || rest >= int64(len(parts)) {
		return nil, fmt.Errorf("payout: split of %d left %d sat over %d addresses (internal error)", amount, rest, len(parts))
	}
	out := make([]Credit, 0, len(parts))
	for i, p := range parts {
		amt := p.floor
		if int64(i) < rest {
			amt++
		}
		out = append(out, Credit{Address: p.addr, Kind: KindShare, Amount: amt, Weight: p.weight})
	}
	slices.SortFunc(out, func(x, y Credit) int { return cmp.Compare(x.Address, y.Address) })
	return out, nil
}

// ErrNoShares means there was a reward to split but no share to split it
// by. The block stays uncredited so an operator can decide.
var ErrNoShares = errors.New("payout: no shares to split the reward by")

// BlockCredits is the whole credit list of one block under a
// proportional scheme (PPLNS or PROP): the pool fee to feeAddress, the rest
// split by weight. The credits sum to reward exactly.
func BlockCredits(reward int64, feeBPS int, feeAddress string, weights []Weight) ([]Credit, error) {
	fee, err := PoolFee(reward, feeBPS)
	if err != nil {
		return nil, err
	}
	if fee > 0 && feeAddress == "" {
		return nil, errors.New("payout: a pool fee needs a fee address")
	}
	credits, err := Split(reward-fee, weights)
	if err != nil {
		return nil, err
	}
	if fee > 0 {
		credits = append(credits, Credit{Address: feeAddress, Kind: KindFee, Amount: fee})
	}
	return credits, nil
}

// SoloCoinbase is how a SOLO block's coinbase value (subsidy plus the
// transaction fees of the template) is divided: the pool fee
// floor(value × bps / 10000), the same rounding as PoolFee, and the rest
// to the finder. finder + fee = value exactly. package pool builds the
// coinbase outputs by this rule (Server.soloOutputs).
func SoloCoinbase(value int64, feeBPS int) (finder, fee int64, err error) {
	if fee, err = PoolFee(value, feeBPS); err != nil {
		return 0, 0, err
	}
	return value - fee, fee, nil
}

// Subsidy is the block subsidy at height on a chain whose subsidy halves
// every interval blocks (Bitcoin: 210,000; regtest: 150), starting at 50
// BTC. After 64 halvings it is zero.
func Subsidy(height int64, interval int32) int64 {
	if interval <= 0 || height < 0 {
		return 0
	}
	halvings := height / int64(interval)
	if halvings >= 64 {
		return 0
	}
	return (50 * 100_000_000) >> halvings
}

// PPSShare is one share as PPS values it.
type PPSShare struct {
	Address           string
	Difficulty        float64 // share difficulty
	NetworkDifficulty float64 // at acceptance
	Height            int64   // of the block the share's job built
}

// PPSCredits values shares at their expected value under PPS:
//
//	value = subsidy(height) × difficulty / network difficulty × (1 − fee)
//
// summed exactly (rationals) per address over the given shares, then
// floored once per address: the fraction of a satoshi stays with the pool.
// Only the subsidy counts, not transaction fees (PPS, not FPPS): the
// subsidy is known at acceptance, fees are not. A share with an unknown (0)
// network difficulty is worth nothing rather than a guess.
func PPSCredits(shares []PPSShare, feeBPS int, interval int32) (map[string]int64, error) {
	if feeBPS < 0 || feeBPS > MaxFeeBPS {
		return nil, fmt.Errorf("payout: pool fee %d bps outside 0..%d", feeBPS, MaxFeeBPS)
	}
	sums := map[string]*big.Rat{}
	for _, s := range shares {
		if !(s.Difficulty > 0) || !(s.NetworkDifficulty > 0) ||
			math.IsInf(s.Difficulty, 0) || math.IsInf(s.NetworkDifficulty, 0) {
			continue
		}
		v := new(big.Rat).SetFloat64(s.Difficulty)
		v.Quo(v, new(big.Rat).SetFloat64(s.NetworkDifficulty))
		v.Mul(v, new(big.Rat).SetInt64(Subsidy(s.Height, interval)))
		if sums[s.Address] == nil {
			sums[s.Address] = new(big.Rat)
		}
		sums[s.Address].Add(sums[s.Address], v)
	}
	keep := big.NewRat(int64(MaxFeeBPS-feeBPS), MaxFeeBPS)
	out := make(map[string]int64, len(sums))
	for a, sum := range sums {
		sum.Mul(sum, keep)
		q := new(big.Int).Quo(sum.Num(), sum.Denom())
		if !q.IsInt64() || q.Int64() > MaxMoney {
			return nil, fmt.Errorf("payout: PPS value of %s out of range", a)
		}
		if q.Sign() > 0 {
			out[a] = q.Int64()
		}
	}
	return out, nil
}
