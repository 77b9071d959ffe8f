//go:build !amd64 || purego

package pow

func block(h *[8]uint32, p []byte) { blockGeneric(h, p) }

func hash32(out *[32]byte, h *[8]uint32) { hash32Generic(out, h) }

func sha256d64(out *[32]byte, in *[64]byte) { sha256d64Generic(out, in) }
