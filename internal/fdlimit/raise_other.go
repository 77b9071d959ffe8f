//go:build !unix

package fdlimit

// Raise reports a nominal limit where there is no rlimit to raise.
func Raise() (int, error) { return 8192, nil }
