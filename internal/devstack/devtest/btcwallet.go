package devtest

import (
	"context"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack"
)

// Btcwallet starts an unlocked btcwallet for this test alone, following
// opts.Btcd (which must run in simnet: start it with
// devstack.BtcdOptions{Network: "simnet"}), stopped when the test ends.
func Btcwallet(t testing.TB, opts devstack.BtcwalletOptions) *devstack.Btcwallet {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	w, err := devstack.StartBtcwallet(ctx, opts)
	Require(t, "start btcwallet", err)
	track(w)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of btcwallet's output and log:\n%s", w.LogTail(30))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		untrack(w)
		if err := w.Stop(ctx); err != nil {
			t.Errorf("stop btcwallet: %v", err)
		}
	})
	return w
}
