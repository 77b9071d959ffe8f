package pool

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// sha256d is Bitcoin's double SHA-256. crypto/sha256 uses SHA-NI/AVX2 where
// the CPU has them and Sum256 does not allocate.
func sha256d(b []byte) [32]byte {
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}

// MerkleBranch returns the hashes a miner folds its coinbase txid with to
// reach the merkle root: the coinbase's sibling path in the tree built from
// txids (internal byte order, coinbase excluded). Computed once per job.
func MerkleBranch(txids [][32]byte) [][32]byte {
	var branch [][32]byte
	level := txids
	for len(level) > 0 {
		branch = append(branch, level[0])
		// level[0] pairs with the coinbase-side hash; the rest pair up
		// among themselves, an odd last one with itself.
		rest := level[1:]
		next := make([][32]byte, 0, (len(rest)+1)/2)
		var pair [64]byte
		for i := 0; i < len(rest); i += 2 {
			j := min(i+1, len(rest)-1)
			copy(pair[:32], rest[i][:])
			copy(pair[32:], rest[j][:])
			next = append(next, sha256d(pair[:]))
		}
		level = next
	}
	return branch
}

// FoldMerkleBranch returns the merkle root for a coinbase txid (internal
// byte order), as a miner computes it.
func FoldMerkleBranch(coinbaseTxID [32]byte, branch [][32]byte) [32]byte {
	root := coinbaseTxID
	var pair [64]byte
	for i := range branch {
		copy(pair[:32], root[:])
		copy(pair[32:], branch[i][:])
		root = sha256d(pair[:])
	}
	return root
}

// displayToInternal decodes a hash printed in display order (as RPC and
// explorers show it) into internal byte order.
func displayToInternal(s string) ([32]byte, error) {
	var h [32]byte
	if hex.DecodedLen(len(s)) != 32 {
		return h, fmt.Errorf("hash %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	reverse(h[:])
	return h, nil
}

// internalToDisplay prints an internal-order hash in display order.
func internalToDisplay(h [32]byte) string {
	reverse(h[:])
	return hex.EncodeToString(h[:])
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// swapWords byte-swaps each 4-byte word in place. Stratum's mining.notify
// prevhash is the header-order previous hash with every 32-bit word
// byte-swapped (an artefact of miners feeding the header to SHA-256 as
// big-endian words); the transform is its own inverse.
func swapWords(h *[32]byte) {
	for i := 0; i < 32; i += 4 {
		h[i], h[i+1], h[i+2], h[i+3] = h[i+3], h[i+2], h[i+1], h[i]
	}
}

// NotifyPrevHash converts a previous-block hash from display order to the
// form mining.notify carries it in.
func NotifyPrevHash(display string) (string, error) {
	h, err := displayToInternal(display)
	if err != nil {
		return "", err
	}
	swapWords(&h)
	return hex.EncodeToString(h[:]), nil
}

// PrevHashFromNotify is the inverse of NotifyPrevHash: it returns the
// display-order hash a mining.notify prevhash field stands for.
func PrevHashFromNotify(notify string) (string, error) {
	var h [32]byte
	if hex.DecodedLen(len(notify)) != 32 {
		return "", fmt.Errorf("notify prevhash %q: want 64 hex digits", notify)
	}
	if _, err := hex.Decode(h[:], []byte(notify)); err != nil {
		return "", fmt.Errorf("notify prevhash %q: %w", notify, err)
	}
	swapWords(&h)
	return internalToDisplay(h), nil
}
