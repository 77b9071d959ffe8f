package payout

// SetStepHook installs the test-only step callback: it runs after each
// payment step ("planned", "sent", "stored") and may stop the run there,
// as a crash would.
func SetStepHook(cfg *Config, f func(step string, b *Batch) error) { cfg.step = f }
