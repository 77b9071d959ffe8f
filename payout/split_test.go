package payout

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"syscall"
	"testing"
)

func credits(cs []Credit) map[string]int64 {
	m := map[string]int64{}
	for _, c := range cs {
		m[c.Kind+":"+c.Address] = c.Amount
	}
	return m
}

func equalMap(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestDocExamples reproduces the worked examples of docs/payouts.md.
func TestDocExamples(t *testing.T) {
	// Example 1: the fee.
	if fee, err := PoolFee(625_000_000, 150); err != nil || fee != 9_375_000 {
		t.Errorf("example 1: fee = %d, %v; want 9375000", fee, err)
	}
	// Examples 1+2: fee and largest-remainder split.
	got, err := BlockCredits(625_000_000, 150, "F", []Weight{{"A", 3}, {"B", 3}, {"C", 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"share:A": 263_839_286, "share:B": 263_839_286, "share:C": 87_946_428, "fee:F": 9_375_000}
	if !equalMap(credits(got), want) {
		t.Errorf("example 2: %v, want %v", credits(got), want)
	}
	// Example 3: ties go by address.
	got, err = Split(100, []Weight{{"C", 1}, {"B", 1}, {"A", 1}})
	if err != nil || !equalMap(credits(got), map[string]int64{"share:A": 34, "share:B": 33, "share:C": 33}) {
		t.Errorf("example 3: %v, %v", credits(got), err)
	}
	// Example 4: PPLNS weights (the window walk itself is tested in
	// ledger against PostgreSQL with the same shares).
	got, err = BlockCredits(312_500_000, 100, "F", []Weight{{"A", 1000}, {"B", 500}, {"C", 500}})
	want = map[string]int64{"share:A": 154_687_500, "share:B": 77_343_750, "share:C": 77_343_750, "fee:F": 3_125_000}
	if err != nil || !equalMap(credits(got), want) {
		t.Errorf("example 4: %v, %v; want %v", credits(got), err, want)
	}
	// Example 5: PROP.
	got, err = Split(99_000_000, []Weight{{"A", 10}, {"B", 30}})
	if err != nil || !equalMap(credits(got), map[string]int64{"share:A": 24_750_000, "share:B": 74_250_000}) {
		t.Errorf("example 5: %v, %v", credits(got), err)
	}
	// Example 6: PPS, exact sum over one batch, floored once. The
	// example's subsidy is 50 BTC >> 4: height 600 at regtest's interval
	// of 150.
	if s := Subsidy(600, 150); s != 312_500_000 {
		t.Fatalf("Subsidy(600, 150) = %d", s)
	}
	pps, err := PPSCredits([]PPSShare{
		{Address: "A", Difficulty: 3, NetworkDifficulty: 7, Height: 600},
		{Address: "A", Difficulty: 3.5, NetworkDifficulty: 7, Height: 600},
	}, 100, 150)
	if err != nil || !equalMap(pps, map[string]int64{"A": 287_276_785}) {
		t.Errorf("example 6: %v, %v", pps, err)
	}
	// Example 7.
	pps, err = PPSCredits([]PPSShare{{Address: "A", Difficulty: 1024, NetworkDifficulty: 1e6, Height: 1}}, 200, 210_000)
	if err != nil || !equalMap(pps, map[string]int64{"A": 5_017_600}) {
		t.Errorf("example 7: %v, %v", pps, err)
	}
	// Example 8: SOLO, a coinbase of subsidy 312,500,000 plus 12,345 of
	// transaction fees at 150 bps.
	finder, fee, err := SoloCoinbase(312_500_000+12_345, 150)
	if err != nil || finder != 307_824_660 || fee != 4_687_685 {
		t.Errorf("example 8: finder %d, fee %d, %v; want 307824660, 4687685", finder, fee, err)
	}
	// No fee: the finder takes the whole coinbase (and the pool builds
	// no fee output).
	if finder, fee, err := SoloCoinbase(5_000_000_000, 0); err != nil || finder != 5_000_000_000 || fee != 0 {
		t.Errorf("SOLO without a fee: %d, %d, %v", finder, fee, err)
	}
}

func TestSplitSumsExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		n := 1 + r.IntN(50)
		ws := make([]Weight, n)
		for j := range ws {
			ws[j] = Weight{Address: string(rune('a' + r.IntN(26))), Difficulty: r.Float64() * math.Pow(10, float64(r.IntN(12)-3))}
		}
		amount := r.Int64N(MaxMoney + 1)
		if i%3 == 0 {
			amount = r.Int64N(1000)
		}
		cs, err := Split(amount, ws)
		if err != nil {
			t.Fatalf("Split(%d, %v): %v", amount, ws, err)
		}
		var sum int64
		for _, c := range cs {
			if c.Amount < 0 {
				t.Fatalf("negative credit %v", c)
			}
			sum += c.Amount
		}
		if sum != amount {
			t.Fatalf("Split(%d) credits sum to %d", amount, sum)
		}
		// Order of the input must not matter.
		shuffled := slices.Clone(ws)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		cs2, _ := Split(amount, shuffled)
		if !equalMap(credits(cs), credits(cs2)) {
			// Float sums of merged weights may differ in the last bit
			// with the order; only per-address merges are affected.
			merged := map[string]int{}
			for _, w := range ws {
				merged[w.Address]++
			}
			dup := false
			for _, n := range merged {
				dup = dup || n > 1
			}
			if !dup {
				t.Fatalf("Split depends on input order: %v vs %v", cs, cs2)
			}
		}
	}
}

func TestSplitRefuses(t *testing.T) {
	if _, err := Split(10, nil); err != ErrNoShares {
		t.Errorf("Split with no weights: %v, want ErrNoShares", err)
	}
	if cs, err := Split(0, nil); err != nil || cs != nil {
		t.Errorf("Split(0, nil) = %v, %v", cs, err)
	}
	for _, w := range []float64{math.NaN(), math.Inf(1), -1} {
		if _, err := Split(10, []Weight{{"a", w}}); err == nil {
			t.Errorf("weight %v accepted", w)
		}
	}
	if _, err := Split(-1, []Weight{{"a", 1}}); err == nil {
		t.Error("negative amount accepted")
	}
	if _, err := PoolFee(MaxMoney, MaxFeeBPS); err != nil {
		t.Errorf("PoolFee(MaxMoney, 100%%): %v", err)
	}
	if f, _ := PoolFee(MaxMoney, MaxFeeBPS); f != MaxMoney {
		t.Errorf("PoolFee(MaxMoney, 100%%) = %d", f)
	}
	if _, err := BlockCredits(100, 100, "", []Weight{{"a", 1}}); err == nil {
		t.Error("fee without fee address accepted")
	}
}

func TestSubsidy(t *testing.T) {
	for _, c := range []struct {
		h    int64
		iv   int32
		want int64
	}{{0, 210000, 5_000_000_000}, {209999, 210000, 5_000_000_000}, {210000, 210000, 2_500_000_000},
		{840000, 210000, 312_500_000}, {64 * 150, 150, 0}, {1, 0, 0}} {
		if got := Subsidy(c.h, c.iv); got != c.want {
			t.Errorf("Subsidy(%d, %d) = %d, want %d", c.h, c.iv, got, c.want)
		}
	}
}

// TestWalletErrorKind classifies the refusals Bitcoin Core and btcwallet
// answer sendmany with.
func TestWalletErrorKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&WalletError{Code: -6, Message: "Insufficient funds"}, ErrKindWalletInsufficient},
		{&WalletError{Code: -6, Message: "insufficient funds available to construct transaction"}, ErrKindWalletInsufficient},
		{&WalletError{Code: -3, Message: "Invalid amount"}, ErrKindWalletInvalidAmount},
		{&WalletError{Code: -5, Message: "Invalid Bitcoin address: x"}, ErrKindWalletInvalidAmount},
		{&WalletError{Code: -4, Message: "Fee estimation failed. Fallbackfee is disabled."}, ErrKindWalletFee},
		{&WalletError{Code: -26, Message: "min relay fee not met, 100 < 141"}, ErrKindWalletFee},
		{&WalletError{Code: -13, Message: "Error: Please enter the wallet passphrase with walletpassphrase first."}, ErrKindWalletLocked},
		{&WalletError{Code: -13, Message: "Enter the wallet passphrase with walletpassphrase first"}, ErrKindWalletLocked},
		{&WalletError{Code: 401, Message: "HTTP 401 Unauthorized"}, ErrKindWalletAuth},
		{&WalletError{Code: -1, Message: "something else"}, ErrKindWalletRefused},
		{fmt.Errorf("sendmany: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), ErrKindWalletUnreachable},
		{fmt.Errorf("sendmany: %w", ErrWalletUnreachable), ErrKindWalletUnreachable},
		{fmt.Errorf("sendmany: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), ErrKindWalletUnknownOutcome},
		{fmt.Errorf("sendmany: %w", context.DeadlineExceeded), ErrKindWalletUnknownOutcome},
	} {
		if got := WalletErrorKind(c.err); got != c.want {
			t.Errorf("WalletErrorKind(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
