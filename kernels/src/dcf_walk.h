/* dcf_walk.h - the DCF's tree walk (key layout and proof in dcf.c), written
 * once over GCC vector types and included by each AES implementation: dcf.c
 * (128-bit vectors, OpenSSL as the AES: the reference), x86_64/aesni.c
 * (128-bit, AES-NI), x86_64/avx2/aes_vaes256.c (256-bit, two instances per
 * vector), x86_64/avx2/aes_ni256.c (the same with AES-NI rounds on each
 * 128-bit lane, for CPUs without VAES) and x86_64/avx512/aes_vaes512.c
 * (512-bit, four per vector).
 *
 * One 128-bit lane holds one instance: its seed with the control bit t in
 * bit 0 (seeds keep their two low bits clear, so t rides in the seed), a
 * value word in the low half of a lane, and so on. A group of vectors
 * (DCF_UE or DCF_UG of them, four lanes each at most) walks all levels with
 * its state in registers: at each level the AES inputs are formed from the
 * seeds, the whole group's blocks go through the AES rounds together (so 8
 * or more blocks are in flight), and the Matyas-Meyer-Oseas feed-forward,
 * the correction words and the value accumulation are applied to the AES
 * output while it is still in registers: there is no separate folding pass
 * and no state written back per level.
 *
 * Keys are stored by quads (dcf.c): a field of the lanes of one vector is
 * one contiguous run of 16 or 8 bytes per lane, so each level's correction
 * words come in with one vector load per field (one 512-bit load for the
 * four seeds of a VAES512 vector) instead of one load and insert per lane,
 * and a group reads one sequential stream per quad.
 *
 * The includer defines, before including:
 *   DCF_VB            vector bytes (16, 32, 64)
 *   DCF_UE, DCF_UG    vectors per group when evaluating, generating
 *   DCF_NAME(s)       s with the implementation's suffix
 *   vq                typedef uint64_t vq __attribute__((vector_size(DCF_VB)))
 *   dcf_aes_t, dcf_aes_open(dcf_aes_t *, const kern_aes_ks_t *) -> int,
 *   dcf_aes_close(dcf_aes_t *), dcf_aes_run(const dcf_aes_t *, vq *b,
 *   unsigned n) -> int: encrypts the n vectors b[0..n) in place, every lane;
 *   dcf_ld16(p, stride, n) / dcf_ld8(p, stride, n): lane j gets the 16 (or 8,
 *   high half 0) bytes at p + j * stride for j < n, lanes j >= n repeat lane
 *   n - 1 (1 <= n <= lanes); dcf_st16 / dcf_st8 (p, stride, v, n): the
 *   reverse for lanes j < n only (n may be 0);
 *   optionally DCF_HAVE_KLD with dcf_kld16(p, n) / dcf_kld8(p, n): lane j < n
 *   gets the 16 (8, high half anything) bytes at p + 16 j (p + 8 j), lanes
 *   j >= n anything, never reading past p + 16 n (8 n); dcf_kst16 /
 *   dcf_kst8 (p, v, n): the reverse for j < n (n may be 0). Without them
 *   the strided hooks serve, with the stride the field's size.
 * It defines static DCF_NAME(dcf_eval) and DCF_NAME(dcf_gen) with the
 * contracts of kern__aes_impl_t's dcf_eval and dcf_gen.
 */
#ifndef DCF_VB
#error "define DCF_VB, DCF_UE, DCF_UG, DCF_NAME and the hooks before including dcf_walk.h"
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the DCF walk reads key bytes as little-endian vector lanes"
#endif

#define DCF_L (DCF_VB / 16)  /* instances per vector */
#define DCF_NQ (DCF_VB / 8)  /* 64-bit words per vector */
#define DCF_GE (DCF_UE * DCF_L) /* instances per evaluation group */
#define DCF_GG (DCF_UG * DCF_L) /* instances per generation group */
#define DCF_AI KERN_AI /* kern_int.h: forced, except under ASan */
/* AES blocks per instance and level: eval 1 + ceil(w/2), gen 2 * (2 + w). */
#define DCF_EB (1 + (KERN_DCF_MAX_WIDTH + 1) / 2)
#define DCF_GB (2 * (2 + KERN_DCF_MAX_WIDTH))
/* Value words are kept by pairs, one pair per lane, when evaluating. */
#define DCF_PW ((KERN_DCF_MAX_WIDTH + 1) / 2)

/* Every lane = (lo, hi). */
static DCF_AI vq vpair(uint64_t lo, uint64_t hi) {
  vq v;
  for (unsigned i = 0; i < DCF_NQ; i += 2) {
    v[i] = lo;
    v[i + 1] = hi;
  }
  return v;
}

/* The two 64-bit halves of every lane swapped. */
static DCF_AI vq vswap(vq v) {
#if defined(__clang__)
#if DCF_NQ == 2
  return __builtin_shufflevector(v, v, 1, 0);
#elif DCF_NQ == 4
  return __builtin_shufflevector(v, v, 1, 0, 3, 2);
#else
  return __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);
#endif
#else
#if DCF_NQ == 2
  const vq idx = {1, 0};
#elif DCF_NQ == 4
  const vq idx = {1, 0, 3, 2};
#else
  const vq idx = {1, 0, 3, 2, 5, 4, 7, 6};
#endif
  return __builtin_shuffle(v, idx);
#endif
}

/* a where m is all ones, b where it is 0 (m is a mask, never a branch). */
static DCF_AI vq vsel(vq m, vq a, vq b) { return (a & m) | (b & ~m); }

/* Every lane = (a's high half, b's low half): a pair of words that
 * straddles two blocks. */
static DCF_AI vq vshift(vq a, vq b) {
#if defined(__clang__)
#if DCF_NQ == 2
  return __builtin_shufflevector(a, b, 1, 2);
#elif DCF_NQ == 4
  return __builtin_shufflevector(a, b, 1, 4, 3, 6);
#else
  return __builtin_shufflevector(a, b, 1, 8, 3, 10, 5, 12, 7, 14);
#endif
#else
#if DCF_NQ == 2
  const vq idx = {1, 2};
#elif DCF_NQ == 4
  const vq idx = {1, 4, 3, 6};
#else
  const vq idx = {1, 8, 3, 10, 5, 12, 7, 14};
#endif
  return __builtin_shuffle(a, b, idx);
#endif
}

/* Every lane = (a's low half, b's low half): two words made a pair. */
static DCF_AI vq vpack(vq a, vq b) {
#if defined(__clang__)
#if DCF_NQ == 2
  return __builtin_shufflevector(a, b, 0, 2);
#elif DCF_NQ == 4
  return __builtin_shufflevector(a, b, 0, 4, 2, 6);
#else
  return __builtin_shufflevector(a, b, 0, 8, 2, 10, 4, 12, 6, 14);
#endif
#else
#if DCF_NQ == 2
  const vq idx = {0, 2};
#elif DCF_NQ == 4
  const vq idx = {0, 4, 2, 6};
#else
  const vq idx = {0, 8, 2, 10, 4, 12, 6, 14};
#endif
  return __builtin_shuffle(a, b, idx);
#endif
}

/* Word q of the value words whose first block is blk[j0] (rows of u):
 * in the low half of each lane. */
#define WORD_AT(blk, j0, q, u)                                               \
  (((q) & 1u) ? vswap((blk)[(j0) + ((q) >> 1)][u]) : (blk)[(j0) + ((q) >> 1)][u])

/* Lane bookkeeping of the group of nv (1..U*L) instances that starts at
 * instance g of a call's n: vector u covers instances g + u*L .. g + u*L +
 * L - 1, in quad (g + u*L) / 4 from its lane (g + u*L) % 4 on (L divides 4
 * and g is a multiple of L, so no vector straddles two quads); nl lanes are
 * loaded (at least 1: a vector beyond nv reads the group's first instance,
 * harmlessly) and ns are stored. */
typedef struct {
  size_t q;     /* byte offset of the vector's quad from the call's keys */
  size_t first; /* its first instance, counted from the group's start */
  unsigned m;   /* instances in its quad: 4, fewer in the call's last */
  unsigned j;   /* its first lane's place in the quad */
  unsigned nl, ns;
} dcf_lanes_t;

static DCF_AI void group_lanes(size_t n, size_t g, size_t nv, size_t kb,
                               const unsigned U, dcf_lanes_t *ln) {
  for (unsigned u = 0; u < U; u++) {
    size_t i0 = (size_t)u * DCF_L;
    unsigned nl = 1, ns = 0;
    if (i0 < nv) {
      size_t r = nv - i0;
      nl = ns = r < DCF_L ? (unsigned)r : DCF_L;
    } else {
      i0 = 0;
    }
    const size_t i = g + i0, qb = i & ~(size_t)3;
    ln[u].q = qb * kb;
    ln[u].first = i0;
    ln[u].m = n - qb < 4 ? (unsigned)(n - qb) : 4u;
    ln[u].j = (unsigned)(i & 3);
    ln[u].nl = nl;
    ln[u].ns = ns;
  }
}

/* The vector's first lane's copy of the key field at offset off (in the
 * one-instance layout) of size sz: its quad holds the field of its m
 * instances one after another. */
#define KEY_AT(base, l, off, sz)                                             \
  ((base) + (l).q + (size_t)(l).m * (off) + (size_t)(l).j * (sz))

#ifndef DCF_HAVE_KLD
#define dcf_kld16(p, n) dcf_ld16((p), 16, (n))
#define dcf_kld8(p, n) dcf_ld8((p), 8, (n))
#define dcf_kst16(p, v, n) dcf_st16((p), 16, (v), (n))
#define dcf_kst8(p, v, n) dcf_st8((p), 8, (v), (n))
#endif

/* Each quad is one sequential stream, but a group walks several at once;
 * each level asks for the same level of the next group's quads (instances
 * i0 .. i0 + G - 1), so a group finds its key lines in cache and gen's
 * stores find theirs owned. Prefetches never fault; past the last key they
 * are merely wasted. */
static DCF_AI void prefetch_group(const uint8_t *keys, size_t i0,
                                  const unsigned G, size_t kb, size_t off,
                                  size_t lb, const int write) {
  const size_t q1 = (i0 + G + 3) / 4;
  for (size_t q = i0 / 4; q < q1; q++) {
    const uint8_t *p = keys + 4 * q * kb + 4 * off;
KERN_UNROLL(8)
    for (size_t c = 0; c <= 4 * lb; c += 64) {
      if (write)
        __builtin_prefetch(p + c, 1);
      else
        __builtin_prefetch(p + c, 0);
    }
  }
}

/* The field at one-instance offset fo holding value words 2p and 2p + 1 of
 * a key (just 2p, 8 bytes, when that is the last of an odd w), its pair in
 * every lane. */
static DCF_AI vq key_pair(const uint8_t *keys, const dcf_lanes_t *l,
                          size_t fo, const unsigned W, unsigned p) {
  if ((W & 1u) && 2 * p + 1 == W)
    return dcf_kld8(KEY_AT(keys, *l, fo, 8), l->nl);
  return dcf_kld16(KEY_AT(keys, *l, fo, 16), l->nl);
}

/* One level of evaluation for a group. Not last: child seed block (tweak
 * x_l) and the ceil(w/2) blocks holding the child's value words; s, t and V
 * are updated. Last: the value blocks only, and V ends holding the leaf's
 * share before the party's sign. V holds the words by pairs (word 2p in the
 * low half of V[u][p], 2p + 1 in the high half): the value blocks already
 * hold them so, and a pair of correction words is one 16-byte key field. */
static DCF_AI int eval_level(const dcf_aes_t *aes, const unsigned W,
                             const int last, unsigned sh, const uint8_t *keys,
                             const dcf_lanes_t ln[DCF_UE], size_t kb,
                             size_t off, vq S[DCF_UE], const vq X[DCF_UE],
                             vq V[DCF_UE][DCF_PW], size_t inext) {
  const unsigned H = (W + 1) / 2;
  const unsigned NB = last ? H : 1 + H;
  const unsigned v0 = last ? 0 : 1;
  const vq lo1 = vpair(1, 0);
  const vq not3 = vpair(~(uint64_t)3, ~(uint64_t)0);
  vq B[DCF_EB][DCF_UE], BASE[DCF_UE], MX[DCF_UE];

  /* The AES input of block j is base ^ tweak_j: kept as base and the
   * tweaks, recomputed for the feed-forward, so that only the blocks in
   * flight occupy registers. */
#define EVAL_TWEAK(u, j)                                                     \
  ((!last && (j) == 0) ? (MX[u] & lo1)                                       \
                       : vpair(2 + (j) - v0, 0) +                             \
                             ((MX[u] & vpair(W, 0)) >> 1))
KERN_UNROLL(16)
  for (unsigned u = 0; u < DCF_UE; u++) {
    const vq xb = (X[u] >> sh) & lo1;
    BASE[u] = S[u] & not3;
    MX[u] = -xb; /* low half all ones where x's bit is 1 */
    /* Block 0 is the child x takes (tweak xb); its words xb*w .. xb*w+w-1
     * start in value block xb*w/2, whose tweak is 2 + xb*w/2. */
KERN_UNROLL(8)
    for (unsigned j = 0; j < NB; j++)
      B[j][u] = BASE[u] ^ EVAL_TWEAK(u, j);
  }
  int rc = dcf_aes_run(aes, &B[0][0], NB * DCF_UE);
  prefetch_group(keys, inext, DCF_GE, kb, off, 16 + 8 * (size_t)W, 0);

KERN_UNROLL(16)
  for (unsigned u = 0; u < DCF_UE; u++) {
KERN_UNROLL(8)
    for (unsigned j = 0; j < NB; j++) /* Matyas-Meyer-Oseas feed-forward */
      B[j][u] ^= BASE[u] ^ EVAL_TWEAK(u, j);
    const vq t = S[u] & lo1;
    const vq mt = -(t | vswap(t));
    const vq mxl = MX[u] | vswap(MX[u]);
    if (!last) {
      const vq cw = dcf_kld16(KEY_AT(keys, ln[u], off, 16), ln[u].nl);
      const vq o = B[0][u];
      /* t_CW^L is bit 0 of s_CW's first byte, t_CW^R bit 1. */
      const vq tcw = vsel(MX[u], cw >> 1, cw) & lo1;
      S[u] = ((o & not3) ^ (cw & not3 & mt)) | ((o & lo1) ^ (tcw & t));
    }
KERN_UNROLL(4)
    for (unsigned p = 0; p < H; p++) {
      /* For odd w the right child's pairs straddle two blocks. */
      vq wv = B[v0 + p][u];
      if (W & 1u)
        wv = vsel(mxl, vshift(wv, B[v0 + (p + 1 < H ? p + 1 : p)][u]), wv);
      vq c;
      if (!last) {
        c = key_pair(keys, &ln[u], off + 16 + 16 * (size_t)p, W, p);
      } else {
        vq cl = key_pair(keys, &ln[u], off + 16 * (size_t)p, W, p);
        vq cr = key_pair(keys, &ln[u], off + 8 * (size_t)W + 16 * p, W, p);
        c = vsel(mxl, cr, cl);
      }
      V[u][p] += wv + (c & mt);
    }
  }
#undef EVAL_TWEAK
  return rc;
}

/* The group of nv instances from instance g of a call's n (keys and kb: the
 * call's; x and y: from the group's first instance on). */
static DCF_AI int eval_group(const dcf_aes_t *aes, uint64_t party,
                             unsigned nbits, const unsigned W,
                             const uint8_t *keys, size_t kb, size_t n,
                             size_t g, const uint64_t *x, uint64_t *y,
                             size_t nv) {
  dcf_lanes_t ln[DCF_UE];
  vq S[DCF_UE], X[DCF_UE], V[DCF_UE][DCF_PW];
  const vq not3 = vpair(~(uint64_t)3, ~(uint64_t)0);
  group_lanes(n, g, nv, kb, DCF_UE, ln);
KERN_UNROLL(16)
  for (unsigned u = 0; u < DCF_UE; u++) {
    S[u] = (dcf_kld16(KEY_AT(keys, ln[u], 0, 16), ln[u].nl) & not3) |
           vpair(party, 0);
    X[u] = dcf_ld8((const uint8_t *)(x + ln[u].first), 8, ln[u].nl);
KERN_UNROLL(4)
    for (unsigned p = 0; p < (W + 1) / 2; p++)
      V[u][p] = vpair(0, 0);
  }
  const size_t lb = 16 + 8 * (size_t)W;
  size_t off = 16;
  int rc = 0;
  for (unsigned l = 0; l + 1 < nbits; l++, off += lb)
    rc |= eval_level(aes, W, 0, nbits - 1 - l, keys, ln, kb, off, S, X, V,
                     g + DCF_GE);
  rc |= eval_level(aes, W, 1, 0, keys, ln, kb, off, S, X, V, g + DCF_GE);
  const vq mp = vpair((uint64_t)0 - party, (uint64_t)0 - party);
KERN_UNROLL(16)
  for (unsigned u = 0; u < DCF_UE; u++)
KERN_UNROLL(4)
    for (unsigned p = 0; p < (W + 1) / 2; p++) {
      uint8_t *yp = (uint8_t *)(y + ln[u].first * W + 2 * p);
      const vq r = (V[u][p] ^ mp) - mp;
      if (2 * p + 1 < W)
        dcf_st16(yp, 8 * (size_t)W, r, ln[u].ns);
      else
        dcf_st8(yp, 8 * (size_t)W, r, ln[u].ns);
    }
  return rc;
}

/* One level of generation for a group: both parties' children (not last:
 * 2 seed blocks and w value blocks each; last: the w value blocks), the
 * correction words written to both keys, the seeds walked along alpha. */
static DCF_AI int gen_level(const dcf_aes_t *aes, const unsigned W,
                            const int last, unsigned sh, uint8_t *k0,
                            uint8_t *k1, const dcf_lanes_t ln[DCF_UG],
                            size_t kb,
                            const vq BE[DCF_UG][KERN_DCF_MAX_WIDTH],
                            size_t off, vq S0[DCF_UG], vq S1[DCF_UG],
                            const vq A[DCF_UG],
                            vq V[DCF_UG][KERN_DCF_MAX_WIDTH], size_t inext) {
  const unsigned NP = last ? W : 2 + W; /* blocks per party */
  const unsigned tw0 = last ? 2 : 0;    /* tweak of the first */
  const unsigned v0 = last ? 0 : 2;     /* first value block */
  const vq lo1 = vpair(1, 0);
  const vq not3 = vpair(~(uint64_t)3, ~(uint64_t)0);
  vq B[DCF_GB][DCF_UG], B0[DCF_UG], B1[DCF_UG];

  /* Inputs are base ^ tweak, recomputed for the feed-forward (eval_level). */
KERN_UNROLL(16)
  for (unsigned u = 0; u < DCF_UG; u++) {
    B0[u] = S0[u] & not3;
    B1[u] = S1[u] & not3;
KERN_UNROLL(10)
    for (unsigned j = 0; j < NP; j++) {
      B[j][u] = B0[u] ^ vpair(tw0 + j, 0);
      B[NP + j][u] = B1[u] ^ vpair(tw0 + j, 0);
    }
  }
  int rc = dcf_aes_run(aes, &B[0][0], 2 * NP * DCF_UG);
  prefetch_group(k0, inext, DCF_GG, kb, off, 16 + 8 * (size_t)W, 1);
  prefetch_group(k1, inext, DCF_GG, kb, off, 16 + 8 * (size_t)W, 1);

KERN_UNROLL(16)
  for (unsigned u = 0; u < DCF_UG; u++) {
KERN_UNROLL(10)
    for (unsigned j = 0; j < NP; j++) {
      B[j][u] ^= B0[u] ^ vpair(tw0 + j, 0);
      B[NP + j][u] ^= B1[u] ^ vpair(tw0 + j, 0);
    }
    const vq a = (A[u] >> sh) & lo1;
    const vq mal = -a;                 /* low half: alpha's bit */
    const vq ma = -(a | vswap(a));     /* whole lane */
    const vq t0 = S0[u] & lo1, t1 = S1[u] & lo1;
    const vq m1 = -t1;
    const unsigned ns = ln[u].ns;
    if (!last) {
      const vq sl0 = B[0][u], sr0 = B[1][u];
      const vq sl1 = B[NP][u], sr1 = B[NP + 1][u];
      /* Lose is the left child where alpha's bit is 1. */
      const vq scw = (vsel(ma, sl0, sr0) ^ vsel(ma, sl1, sr1)) & not3;
      const vq tcwl = ((sl0 ^ sl1) & lo1) ^ a ^ lo1;
      const vq tcwr = ((sr0 ^ sr1) & lo1) ^ a;
      const vq cwb = scw | tcwl | (tcwr << 1);
      dcf_kst16(KEY_AT(k0, ln[u], off, 16), cwb, ns);
      dcf_kst16(KEY_AT(k1, ln[u], off, 16), cwb, ns);
      const vq tcwk = vsel(mal, tcwr, tcwl);
      const vq c0 = vsel(ma, sr0, sl0), c1 = vsel(ma, sr1, sl1);
      const vq mt0 = -(t0 | vswap(t0)), mt1 = -(t1 | vswap(t1));
      vq prev = vpair(0, 0);
KERN_UNROLL(8)
      for (unsigned k = 0; k < W; k++) {
        const vq be = BE[u][k];
        const vq vl0 = WORD_AT(B, v0, k, u), vr0 = WORD_AT(B, v0, W + k, u);
        const vq vl1 = WORD_AT(B, NP + v0, k, u);
        const vq vr1 = WORD_AT(B, NP + v0, W + k, u);
        const vq lose0 = vsel(mal, vl0, vr0), keep0 = vsel(mal, vr0, vl0);
        const vq lose1 = vsel(mal, vl1, vr1), keep1 = vsel(mal, vr1, vl1);
        /* Leaving alpha's path to the left of a 1-bit means x < alpha:
         * that correction also carries beta. */
        const vq d = lose1 - lose0 - V[u][k] + (be & mal);
        const vq vcw = (d ^ m1) - m1;
        V[u][k] += keep0 - keep1 + ((vcw ^ m1) - m1);
        /* Corrections go to the keys by pairs of words (key_pair). */
        const size_t fo = off + 16 + 16 * (size_t)(k / 2);
        if (k & 1u) {
          dcf_kst16(KEY_AT(k0, ln[u], fo, 16), vpack(prev, vcw), ns);
          dcf_kst16(KEY_AT(k1, ln[u], fo, 16), vpack(prev, vcw), ns);
        } else if (k + 1 == W) {
          dcf_kst8(KEY_AT(k0, ln[u], fo, 8), vcw, ns);
          dcf_kst8(KEY_AT(k1, ln[u], fo, 8), vcw, ns);
        }
        prev = vcw;
      }
      S0[u] = ((c0 & not3) ^ (scw & mt0)) | ((c0 & lo1) ^ (tcwk & t0));
      S1[u] = ((c1 & not3) ^ (scw & mt1)) | ((c1 & lo1) ^ (tcwk & t1));
    } else {
KERN_UNROLL(2)
      for (unsigned c = 0; c < 2; c++) {
        vq prev = vpair(0, 0);
KERN_UNROLL(8)
        for (unsigned k = 0; k < W; k++) {
          const vq w0 = WORD_AT(B, 0, c * W + k, u);
          const vq w1 = WORD_AT(B, NP, c * W + k, u);
          /* The left leaf is below alpha exactly when alpha's bit is 1. */
          const vq d = w1 - w0 - V[u][k] +
                       (c == 0 ? (BE[u][k] & mal) : vpair(0, 0));
          const vq cw = (d ^ m1) - m1;
          const size_t fo = off + 8 * (size_t)(c * W) + 16 * (size_t)(k / 2);
          if (k & 1u) {
            dcf_kst16(KEY_AT(k0, ln[u], fo, 16), vpack(prev, cw), ns);
            dcf_kst16(KEY_AT(k1, ln[u], fo, 16), vpack(prev, cw), ns);
          } else if (k + 1 == W) {
            dcf_kst8(KEY_AT(k0, ln[u], fo, 8), cw, ns);
            dcf_kst8(KEY_AT(k1, ln[u], fo, 8), cw, ns);
          }
          prev = cw;
        }
      }
    }
  }
  return rc;
}

/* The group of nv instances from instance g of a call's n (k0, k1 and kb:
 * the call's; roots, alpha and beta: from the group's first instance on). */
static DCF_AI int gen_group(const dcf_aes_t *aes, unsigned nbits,
                            const unsigned W, const uint8_t *roots,
                            const uint64_t *alpha, const uint64_t *beta,
                            uint8_t *k0, uint8_t *k1, size_t kb, size_t n,
                            size_t g, size_t nv) {
  dcf_lanes_t ln[DCF_UG];
  vq S0[DCF_UG], S1[DCF_UG], A[DCF_UG], V[DCF_UG][KERN_DCF_MAX_WIDTH];
  vq BE[DCF_UG][KERN_DCF_MAX_WIDTH];
  const vq not3 = vpair(~(uint64_t)3, ~(uint64_t)0);
  group_lanes(n, g, nv, kb, DCF_UG, ln);
KERN_UNROLL(16)
  for (unsigned u = 0; u < DCF_UG; u++) {
    const size_t f = ln[u].first;
    const unsigned nl = ln[u].nl;
    /* Root seeds: 32 bytes per instance, party 0's then party 1's, written
     * to the keys here with the rest (t_0 = 0, t_1 = 1). */
    S0[u] = dcf_ld16(roots + 32 * f, 32, nl) & not3;
    S1[u] = dcf_ld16(roots + 32 * f + 16, 32, nl) & not3;
    dcf_kst16(KEY_AT(k0, ln[u], 0, 16), S0[u], ln[u].ns);
    dcf_kst16(KEY_AT(k1, ln[u], 0, 16), S1[u], ln[u].ns);
    S1[u] |= vpair(1, 0);
    A[u] = dcf_ld8((const uint8_t *)(alpha + f), 8, nl);
KERN_UNROLL(8)
    for (unsigned k = 0; k < W; k++) {
      V[u][k] = vpair(0, 0);
      BE[u][k] = dcf_ld8((const uint8_t *)(beta + f * W + k), 8 * (size_t)W,
                         nl);
    }
  }
  const size_t lb = 16 + 8 * (size_t)W;
  size_t off = 16;
  int rc = 0;
  for (unsigned l = 0; l + 1 < nbits; l++, off += lb)
    rc |= gen_level(aes, W, 0, nbits - 1 - l, k0, k1, ln, kb, BE, off, S0,
                    S1, A, V, g + DCF_GG);
  rc |= gen_level(aes, W, 1, 0, k0, k1, ln, kb, BE, off, S0, S1, A, V,
                  g + DCF_GG);
  return rc;
}

/* One function per width, with its group loop: the width is a literal in
 * each, so the word loops unroll and the state arrays stay in registers. */
#define DCF_DEFINE_WIDTH(w)                                                  \
  static int DCF_NAME(eval_w##w)(const dcf_aes_t *aes, uint64_t party,       \
                                 unsigned nbits, size_t n,                   \
                                 const uint8_t *keys, size_t kb,             \
                                 const uint64_t *x, uint64_t *y) {           \
    int rc = 0;                                                              \
    for (size_t g = 0; g < n; g += DCF_GE) {                                 \
      const size_t nv = n - g < DCF_GE ? n - g : DCF_GE;                     \
      rc |= eval_group(aes, party, nbits, w, keys, kb, n, g, x + g,          \
                       y + g * (w), nv);                                     \
    }                                                                        \
    return rc;                                                               \
  }                                                                          \
  static int DCF_NAME(gen_w##w)(const dcf_aes_t *aes, unsigned nbits,        \
                                size_t n, const uint8_t *roots,              \
                                const uint64_t *alpha, const uint64_t *beta, \
                                uint8_t *k0, uint8_t *k1, size_t kb) {       \
    int rc = 0;                                                              \
    for (size_t g = 0; g < n; g += DCF_GG) {                                 \
      const size_t nv = n - g < DCF_GG ? n - g : DCF_GG;                     \
      rc |= gen_group(aes, nbits, w, roots + 32 * g, alpha + g,              \
                      beta + g * (w), k0, k1, kb, n, g, nv);                 \
    }                                                                        \
    return rc;                                                               \
  }
DCF_DEFINE_WIDTH(1)
DCF_DEFINE_WIDTH(2)
DCF_DEFINE_WIDTH(3)
DCF_DEFINE_WIDTH(4)
DCF_DEFINE_WIDTH(5)
DCF_DEFINE_WIDTH(6)
DCF_DEFINE_WIDTH(7)
DCF_DEFINE_WIDTH(8)
#undef DCF_DEFINE_WIDTH

#define DCF_WIDTH_CASES(F, ...)                                              \
  switch (width) {                                                           \
  case 1: rc = DCF_NAME(F##_w1)(__VA_ARGS__); break;                         \
  case 2: rc = DCF_NAME(F##_w2)(__VA_ARGS__); break;                         \
  case 3: rc = DCF_NAME(F##_w3)(__VA_ARGS__); break;                         \
  case 4: rc = DCF_NAME(F##_w4)(__VA_ARGS__); break;                         \
  case 5: rc = DCF_NAME(F##_w5)(__VA_ARGS__); break;                         \
  case 6: rc = DCF_NAME(F##_w6)(__VA_ARGS__); break;                         \
  case 7: rc = DCF_NAME(F##_w7)(__VA_ARGS__); break;                         \
  default: rc = DCF_NAME(F##_w8)(__VA_ARGS__); break;                        \
  }

static int DCF_NAME(dcf_eval)(const kern_aes_ks_t *ks, int party,
                              unsigned nbits, unsigned width, size_t n,
                              const uint8_t *keys, size_t kb,
                              const uint64_t *x, uint64_t *y) {
  dcf_aes_t aes;
  int rc = dcf_aes_open(&aes, ks);
  if (rc != 0)
    return rc;
  DCF_WIDTH_CASES(eval, &aes, (uint64_t)party, nbits, n, keys, kb, x, y)
  dcf_aes_close(&aes);
  return rc;
}

static int DCF_NAME(dcf_gen)(const kern_aes_ks_t *ks, unsigned nbits,
                             unsigned width, size_t n, const uint8_t *roots,
                             const uint64_t *alpha, const uint64_t *beta,
                             uint8_t *k0, uint8_t *k1, size_t kb) {
  dcf_aes_t aes;
  int rc = dcf_aes_open(&aes, ks);
  if (rc != 0)
    return rc;
  DCF_WIDTH_CASES(gen, &aes, nbits, n, roots, alpha, beta, k0, k1, kb)
  dcf_aes_close(&aes);
  return rc;
}

#undef DCF_WIDTH_CASES
#undef WORD_AT
#undef KEY_AT
#undef DCF_AI
