//go:build !amd64 || purego

package sha256d

// The SHA-NI kernel is amd64 assembly; elsewhere (and with -tags purego)
// it is listed as unavailable so that naming it says why it cannot run.
func init() { register("shani", 30, false, nil) }
