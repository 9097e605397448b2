package cidstore

import "math/bits"

// dirHash is the seeded 64-bit directory hash of a key. Both words feed it,
// so keys that share their high word (sequential or structured keys) still
// spread over the directory. Bit 0 is the most significant bit: the
// directory index is the top GlobalDepth bits, and a bucket at local depth d
// owns the hashes whose top d bits equal its prefix.
func dirHash(k E, seed uint64) uint64 {
	h := k.High*0x9E3779B97F4A7C15 ^ bits.RotateLeft64(k.Low*0xC2B2AE3D27D4EB4F, 31) ^ seed
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// topBits returns the top n bits of h (0 when n is 0).
func topBits(h uint64, n uint8) uint64 {
	if n == 0 {
		return 0
	}
	return h >> (64 - n)
}
