package pow

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// SHA256d is Bitcoin's double SHA-256. It uses the SHA extensions where
// the CPU has them, and does not allocate.
func SHA256d(b []byte) [32]byte {
	var m SHA256Midstate
	return m.SHA256d(b)
}

// MerkleBranch returns the hashes a miner folds its coinbase txid with to
// reach the merkle root: the coinbase's sibling path in the tree built from
// txids (internal byte order, coinbase excluded).
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
			next = append(next, SHA256d64(&pair))
		}
		level = next
	}
	return branch
}

// FoldMerkleBranch returns the merkle root for a coinbase txid (internal
// byte order): the coinbase is always the leftmost leaf, so each step
// hashes (running ‖ sibling). It does not allocate.
func FoldMerkleBranch(coinbaseTxID [32]byte, branch [][32]byte) [32]byte {
	root := coinbaseTxID
	var pair [64]byte
	for i := range branch {
		copy(pair[:32], root[:])
		copy(pair[32:], branch[i][:])
		root = SHA256d64(&pair)
	}
	return root
}

// PutHeader writes an 80-byte block header into h: version, previous block
// and merkle root (internal byte order), ntime, nbits and nonce, the
// integers little-endian.
func PutHeader(h *[80]byte, version uint32, prev, merkleRoot *[32]byte, ntime, bits, nonce uint32) {
	binary.LittleEndian.PutUint32(h[0:4], version)
	copy(h[4:36], prev[:])
	copy(h[36:68], merkleRoot[:])
	binary.LittleEndian.PutUint32(h[68:72], ntime)
	binary.LittleEndian.PutUint32(h[72:76], bits)
	binary.LittleEndian.PutUint32(h[76:80], nonce)
}

// SwapWords byte-swaps each 4-byte word in place. Stratum's mining.notify
// prevhash is the header-order previous hash with every 32-bit word
// byte-swapped (an artefact of miners feeding the header to SHA-256 as
// big-endian words); the transform is its own inverse.
func SwapWords(h *[32]byte) {
	for i := 0; i < 32; i += 4 {
		h[i], h[i+1], h[i+2], h[i+3] = h[i+3], h[i+2], h[i+1], h[i]
	}
}

// ParseHash decodes a hash printed in display order (as RPC and explorers
// show it) into internal byte order.
func ParseHash(display string) ([32]byte, error) {
	var h [32]byte
	if hex.DecodedLen(len(display)) != 32 {
		return h, fmt.Errorf("hash %q: want 64 hex digits", display)
	}
	if _, err := hex.Decode(h[:], []byte(display)); err != nil {
		return h, fmt.Errorf("hash %q: %w", display, err)
	}
	reverse(h[:])
	return h, nil
}

// HashString prints an internal-order hash in display order.
func HashString(h *[32]byte) string {
	r := *h
	reverse(r[:])
	return hex.EncodeToString(r[:])
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// NotifyPrevHash converts a previous-block hash from display order to the
// form mining.notify carries it in.
func NotifyPrevHash(display string) (string, error) {
	h, err := ParseHash(display)
	if err != nil {
		return "", err
	}
	SwapWords(&h)
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
	SwapWords(&h)
	return HashString(&h), nil
}
