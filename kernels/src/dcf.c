/* dcf.c - batched distributed comparison function (DCF) of Boyle, Chandran,
 * Gilboa, Gupta, Ishai, Kelkar and Pu ("Function Secret Sharing for Mixed-Mode
 * and Fixed-Point Secure Computation", Eurocrypt 2021), the kernel behind the
 * ReLU, truncation and MaxPool gates of mpc/: the dealer runs kern_dcf_gen on
 * the masks it knows, each party runs kern_dcf_eval on the opened masked value.
 * It is a GGM tree walked from the most significant bit of x, as in the DPF of
 * Boyle, Gilboa and Ishai (2016), where every level also carries a value
 * correction word V_CW so that leaving alpha's path to the left of a 1-bit
 * adds beta to the two shares. The PRG is fixed-key AES-128 (OpenSSL EVP, ECB,
 * AES-NI) in tweaked Matyas-Meyer-Oseas form G_j(s) = AES_K(s ^ j) ^ (s ^ j),
 * the tweak j xored into the low byte of the seed; one 128-bit seed expands to
 *   block 0: left child seed (its LSB is the left control bit t^L),
 *   block 1: right child seed (LSB is t^R),
 *   blocks 2 .. 2+width-1: 2*width ring values, the left child's width values
 *            first, then the right child's (so two children of width 1 share
 *            one block, and one child of width w needs ceil(w/2) blocks).
 * Seeds always have their LSB cleared, so the tweaked inputs of one seed never
 * coincide. The final correction converts the leaf seed s by the same G: its
 * "left values" (blocks 2.., first width words).
 *
 * Cost per instance, with h = ceil(width/2):
 *   eval: nbits * (1 + h) + h AES blocks: only the child x takes is expanded;
 *         width 1 or 2: 2 per level, 129 at nbits = 64, 81 at nbits = 40.
 *   gen:  nbits * 2 * (2 + width) + 2 * h: both children of both parties;
 *         width 1: 6 per level, 386 at nbits = 64 (width 2: 514).
 * Measured on one core of a 2-vCPU AMD EPYC (OpenSSL 3.0 ECB, about 690 M
 * blocks/s raw), count = 25600, width 1: eval 460 ns per instance at
 * nbits = 64 (280 M AES blocks/s effective), 290 ns at nbits = 40; gen
 * 1.8 us per instance (both keys) at nbits = 64. The rest of the time goes to
 * folding the MMO outputs and loading the strided correction words.
 * Key of one party for one instance (kern_dcf_key_bytes), little-endian:
 *   offset 0:                    root seed, 16 bytes (LSB of byte 0 is 0)
 *   offset 16 + l * (17 + 8w),   level l = 0 .. nbits-1 (bit nbits-1-l of x):
 *       s_CW (16 bytes), one byte with t_CW^L in bit 0 and t_CW^R in bit 1,
 *       V_CW (w ring elements, 8 bytes each)
 *   offset 16 + nbits*(17 + 8w): the final correction, w ring elements.
 * Total 16 + nbits * (17 + 8w) + 8w bytes: 1624 for nbits = 64, width 1;
 * 2144 for nbits = 64, width 2; 1024 for nbits = 40, width 1.
 *
 * Batching: both functions walk `count` instances level by level, in chunks of
 * DCF_CHUNK, so one EVP_EncryptUpdate call encrypts thousands of blocks and
 * AES-NI stays pipelined; scratch is allocated once per call. Alpha's bits and
 * the control bits are secret, so keep/lose and conditional corrections are
 * selected with masks; eval's x is public to its evaluator but is also used
 * through masks only because that is faster than unpredictable branches.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kern_int.h"

/* Instances walked together. Large enough that each EVP call covers several
 * thousand blocks (its fixed cost vanishes), small enough that the per-level
 * state and the current cache line of every key stay in L2. */
#define DCF_CHUNK 1024u

/* The fixed public AES key: the first 128 bits of the fractional part of pi,
 * a value nobody chose. Security rests on AES behaving as a random
 * permutation under a known key (the correlation-robust hash model). */
static const uint8_t dcf_aes_key[16] = {0x24, 0x3f, 0x6a, 0x88, 0x85, 0xa3,
                                        0x08, 0xd3, 0x13, 0x19, 0x8a, 0x2e,
                                        0x03, 0x70, 0x73, 0x44};

/* Host <-> little-endian, so keys and the PRG are the same on every CPU. */
static inline uint64_t le64(uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return __builtin_bswap64(v);
#else
  return v;
#endif
}

static inline uint64_t ld64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return le64(v);
}

static inline void st64(uint8_t *p, uint64_t v) {
  v = le64(v);
  memcpy(p, &v, 8);
}

/* (-1)^t * v for t in {0, 1}, without a branch: m is 0 or all ones. */
static inline uint64_t cneg(uint64_t v, uint64_t t) {
  uint64_t m = (uint64_t)0 - t;
  return (v ^ m) - m;
}

static size_t level_bytes(unsigned width) { return 17u + 8u * (size_t)width; }

size_t kern_dcf_key_bytes(unsigned nbits, unsigned width) {
  if (nbits < 1 || nbits > 64 || width < 1 || width > KERN_DCF_MAX_WIDTH)
    return 0;
  return 16u + (size_t)nbits * level_bytes(width) + 8u * (size_t)width;
}

/* A context for the fixed-key permutation, one per call so concurrent calls
 * from several threads never share mutable OpenSSL state. */
static EVP_CIPHER_CTX *aes_open(void) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (ctx == NULL)
    return NULL;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, dcf_aes_key, NULL) !=
          1 ||
      EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* Encrypts nblk blocks of buf in place (ECB allows out == in). */
static int aes_blocks(EVP_CIPHER_CTX *ctx, uint64_t *buf, size_t nblk) {
  uint8_t *p = (uint8_t *)buf;
  while (nblk > 0) {
    /* EVP takes an int length; chunks keep far below this, but stay safe. */
    size_t n = nblk > (1u << 20) ? (1u << 20) : nblk;
    int outl = 0;
    if (EVP_EncryptUpdate(ctx, p, &outl, p, (int)(n * 16)) != 1 ||
        outl != (int)(n * 16))
      return TANDEM_ECRYPTO;
    p += n * 16;
    nblk -= n;
  }
  return 0;
}

/* Writes the MMO input s ^ j of block j (j < 256) as host words whose memory
 * image is the little-endian block. */
static inline void blk_in(uint64_t *b, uint64_t lo, uint64_t hi, uint64_t j) {
  b[0] = le64(lo ^ j);
  b[1] = le64(hi);
}

/* The word q (0 .. 2*nblocks) of the value blocks of a seed after MMO:
 * vb points at the encrypted value blocks, whose first block has tweak j0. */
static inline uint64_t val_word(const uint64_t *vb, unsigned q, uint64_t lo,
                                uint64_t hi, uint64_t j0) {
  uint64_t in = (q & 1u) ? hi : (lo ^ (j0 + (q >> 1)));
  return le64(vb[q]) ^ in;
}

/* One chunk of cn instances of kern_dcf_gen (alpha, beta, k0, k1 already
 * offset to the chunk). Always inlined so that the callers with a literal
 * width get their word loops unrolled. seed holds (lo, hi) per party per
 * instance, tb the control bits, va V_alpha: the sum of both parties' shares
 * along alpha's path so far. */
static inline __attribute__((always_inline)) int
gen_chunk(EVP_CIPHER_CTX *ctx, kern_prg_t *prg, unsigned nbits, const unsigned w,
          size_t cn, const uint64_t *alpha, const uint64_t *beta, uint8_t *k0,
          uint8_t *k1, size_t kb, uint64_t *blk, uint64_t *seed, uint64_t *tb,
          uint64_t *va) {
  const unsigned h = (w + 1) / 2;
  const size_t bpp = 2u + w; /* blocks per party per level */
  const size_t bpi = 2 * bpp;
  const size_t lb = level_bytes(w);
  int rc;

  /* Root seeds: 32 bytes per instance from the caller's PRG, party 0 then
   * party 1, LSB cleared; t_b = b. The blk area is the landing buffer. */
  uint8_t *rnd = (uint8_t *)blk;
  rc = kern_prg_bytes(prg, rnd, cn * 32);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < cn; i++) {
    for (unsigned b = 0; b < 2; b++) {
      uint64_t lo = ld64(rnd + 32 * i + 16 * b) & ~(uint64_t)1;
      uint64_t hi = ld64(rnd + 32 * i + 16 * b + 8);
      seed[4 * i + 2 * b] = lo;
      seed[4 * i + 2 * b + 1] = hi;
      tb[2 * i + b] = b;
      uint8_t *key = (b ? k1 : k0) + i * kb;
      st64(key, lo);
      st64(key + 8, hi);
    }
    for (unsigned k = 0; k < w; k++)
      va[i * w + k] = 0;
  }

  for (unsigned l = 0; l < nbits; l++) {
    const unsigned shift = nbits - 1 - l;
    for (size_t i = 0; i < cn; i++)
      for (unsigned b = 0; b < 2; b++) {
        uint64_t lo = seed[4 * i + 2 * b], hi = seed[4 * i + 2 * b + 1];
        uint64_t *o = blk + (i * bpi + b * bpp) * 2;
        for (unsigned j = 0; j < bpp; j++)
          blk_in(o + 2 * j, lo, hi, j);
      }
    rc = aes_blocks(ctx, blk, cn * bpi);
    if (rc != 0)
      return rc;

    for (size_t i = 0; i < cn; i++) {
      uint8_t *cw0 = k0 + i * kb + 16 + l * lb;
      uint8_t *cw1 = k1 + i * kb + 16 + l * lb;
      /* As in eval: the keys are written with a stride of kb, so fetch the
       * next level's lines a chunk ahead of the stores (the final
       * correction keeps the address inside the key). */
      __builtin_prefetch(cw0 + 2 * lb - 1, 1);
      __builtin_prefetch(cw1 + 2 * lb - 1, 1);
      const uint64_t a = (alpha[i] >> shift) & 1;
      const uint64_t ma = (uint64_t)0 - a; /* all ones: Lose = L */
      uint64_t sl[2][2], sr[2][2], tl[2], tr[2];
      const uint64_t *vb[2];
      for (unsigned b = 0; b < 2; b++) {
        uint64_t lo = seed[4 * i + 2 * b], hi = seed[4 * i + 2 * b + 1];
        const uint64_t *o = blk + (i * bpi + b * bpp) * 2;
        uint64_t l0 = le64(o[0]) ^ lo, l1 = le64(o[1]) ^ hi;
        uint64_t r0 = le64(o[2]) ^ lo ^ 1, r1 = le64(o[3]) ^ hi;
        tl[b] = l0 & 1;
        tr[b] = r0 & 1;
        sl[b][0] = l0 & ~(uint64_t)1;
        sl[b][1] = l1;
        sr[b][0] = r0 & ~(uint64_t)1;
        sr[b][1] = r1;
        vb[b] = o + 4;
      }
      /* Lose is L when alpha's bit is 1, R when it is 0. */
      uint64_t scw0 = ((sl[0][0] ^ sl[1][0]) & ma) |
                      ((sr[0][0] ^ sr[1][0]) & ~ma);
      uint64_t scw1 = ((sl[0][1] ^ sl[1][1]) & ma) |
                      ((sr[0][1] ^ sr[1][1]) & ~ma);
      uint64_t tcwl = tl[0] ^ tl[1] ^ a ^ 1;
      uint64_t tcwr = tr[0] ^ tr[1] ^ a;
      const uint64_t t1 = tb[2 * i + 1];
      const uint64_t s0lo = seed[4 * i], s0hi = seed[4 * i + 1];
      const uint64_t s1lo = seed[4 * i + 2], s1hi = seed[4 * i + 3];

      for (unsigned k = 0; k < w; k++) {
        uint64_t vl0 = val_word(vb[0], k, s0lo, s0hi, 2);
        uint64_t vr0 = val_word(vb[0], w + k, s0lo, s0hi, 2);
        uint64_t vl1 = val_word(vb[1], k, s1lo, s1hi, 2);
        uint64_t vr1 = val_word(vb[1], w + k, s1lo, s1hi, 2);
        uint64_t lose0 = (vl0 & ma) | (vr0 & ~ma);
        uint64_t lose1 = (vl1 & ma) | (vr1 & ~ma);
        uint64_t keep0 = (vr0 & ma) | (vl0 & ~ma);
        uint64_t keep1 = (vr1 & ma) | (vl1 & ~ma);
        /* Leaving the path to the left of a 1-bit means x < alpha: the
         * correction then also carries beta. */
        uint64_t vcw =
            cneg(lose1 - lose0 - va[i * w + k] + (beta[i * w + k] & ma), t1);
        va[i * w + k] += keep0 - keep1 + cneg(vcw, t1);
        st64(cw0 + 17 + 8 * k, vcw);
        st64(cw1 + 17 + 8 * k, vcw);
      }

      st64(cw0, scw0);
      st64(cw0 + 8, scw1);
      st64(cw1, scw0);
      st64(cw1 + 8, scw1);
      cw0[16] = cw1[16] = (uint8_t)(tcwl | (tcwr << 1));

      /* Walk to the Keep child, corrected where the control bit is 1. */
      uint64_t tcwk = (tcwr & ma) | (tcwl & ~ma);
      for (unsigned b = 0; b < 2; b++) {
        uint64_t t = tb[2 * i + b], mt = (uint64_t)0 - t;
        uint64_t kw0 = (sr[b][0] & ma) | (sl[b][0] & ~ma);
        uint64_t kw1 = (sr[b][1] & ma) | (sl[b][1] & ~ma);
        uint64_t tk = (tr[b] & ma) | (tl[b] & ~ma);
        seed[4 * i + 2 * b] = kw0 ^ (scw0 & mt);
        seed[4 * i + 2 * b + 1] = kw1 ^ (scw1 & mt);
        tb[2 * i + b] = tk ^ (tcwk & t);
      }
    }
  }

  /* Final correction: Convert(s) is the leaf seed's left values under G. */
  for (size_t i = 0; i < cn; i++)
    for (unsigned b = 0; b < 2; b++) {
      uint64_t lo = seed[4 * i + 2 * b], hi = seed[4 * i + 2 * b + 1];
      uint64_t *o = blk + (i * 2 + b) * h * 2;
      for (unsigned j = 0; j < h; j++)
        blk_in(o + 2 * j, lo, hi, 2 + j);
    }
  rc = aes_blocks(ctx, blk, cn * 2 * h);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < cn; i++) {
    const uint64_t t1 = tb[2 * i + 1];
    uint8_t *f0 = k0 + i * kb + 16 + (size_t)nbits * lb;
    uint8_t *f1 = k1 + i * kb + 16 + (size_t)nbits * lb;
    const uint64_t *o0 = blk + (i * 2) * h * 2, *o1 = o0 + h * 2;
    for (unsigned k = 0; k < w; k++) {
      uint64_t c0w = val_word(o0, k, seed[4 * i], seed[4 * i + 1], 2);
      uint64_t c1w = val_word(o1, k, seed[4 * i + 2], seed[4 * i + 3], 2);
      uint64_t fcw = cneg(c1w - c0w - va[i * w + k], t1);
      st64(f0 + 8 * k, fcw);
      st64(f1 + 8 * k, fcw);
    }
  }
  return 0;
}

int kern_dcf_gen(kern_prg_t *prg, unsigned nbits, unsigned width, size_t count,
                 const uint64_t *alpha, const uint64_t *beta, uint8_t *k0,
                 uint8_t *k1) {
  size_t kb = kern_dcf_key_bytes(nbits, width);
  if (kb == 0 || prg == NULL)
    return TANDEM_EINVAL;
  if (count == 0)
    return 0;
  if (alpha == NULL || beta == NULL || k0 == NULL || k1 == NULL ||
      count > SIZE_MAX / kb)
    return TANDEM_EINVAL;
  if (nbits < 64) {
    /* Or-reduce instead of testing each alpha, so no branch depends on one. */
    uint64_t high = 0;
    for (size_t i = 0; i < count; i++)
      high |= alpha[i] >> nbits;
    if (high != 0)
      return TANDEM_EINVAL;
  }

  const size_t chunk = count < DCF_CHUNK ? count : DCF_CHUNK;
  /* One allocation: AES blocks (2 parties x (2 + width) per instance), seeds
   * (2 parties x 2 words), control bits, V_alpha. Everything in it is secret
   * and wiped before free. */
  size_t blk_words = chunk * 2 * (2u + width) * 2;
  size_t seed_words = chunk * 4;
  size_t bit_words = chunk * 2;
  size_t va_words = chunk * width;
  size_t total = blk_words + seed_words + bit_words + va_words;
  uint64_t *scratch = malloc(total * sizeof(uint64_t));
  if (scratch == NULL)
    return TANDEM_ENOMEM;
  uint64_t *blk = scratch;
  uint64_t *seed = blk + blk_words;
  uint64_t *tb = seed + seed_words;
  uint64_t *va = tb + bit_words;

  int rc = 0;
  EVP_CIPHER_CTX *ctx = aes_open();
  if (ctx == NULL) {
    rc = TANDEM_ECRYPTO;
    goto fail;
  }

  for (size_t c0 = 0; c0 < count && rc == 0; c0 += chunk) {
    size_t cn = count - c0 < chunk ? count - c0 : chunk;
    const uint64_t *ac = alpha + c0, *bc = beta + c0 * width;
    uint8_t *k0c = k0 + c0 * kb, *k1c = k1 + c0 * kb;
    switch (width) {
    case 1:
      rc = gen_chunk(ctx, prg, nbits, 1, cn, ac, bc, k0c, k1c, kb, blk, seed,
                     tb, va);
      break;
    case 2:
      rc = gen_chunk(ctx, prg, nbits, 2, cn, ac, bc, k0c, k1c, kb, blk, seed,
                     tb, va);
      break;
    default:
      rc = gen_chunk(ctx, prg, nbits, width, cn, ac, bc, k0c, k1c, kb, blk,
                     seed, tb, va);
      break;
    }
  }

fail:
  if (ctx != NULL)
    EVP_CIPHER_CTX_free(ctx);
  OPENSSL_cleanse(scratch, total * sizeof(uint64_t));
  free(scratch);
  if (rc != 0) {
    /* Half-written keys are of no use to anyone; do not leave them around. */
    OPENSSL_cleanse(k0, count * kb);
    OPENSSL_cleanse(k1, count * kb);
  }
  return rc;
}

/* Writes the AES inputs of the child xb of seed (lo, hi): its seed block,
 * then the ceil(w/2) value blocks holding its words xb*w .. xb*w+w-1, which
 * start in value block (xb*w)/2, i.e. tweak 2 + (xb*w)/2. */
static inline void eval_in(uint64_t *o, uint64_t lo, uint64_t hi, uint64_t xb,
                           unsigned w, unsigned h) {
  blk_in(o, lo, hi, xb);
  const uint64_t j0 = 2 + ((xb * w) >> 1);
  for (unsigned j = 0; j < h; j++)
    blk_in(o + 2 + 2 * j, lo, hi, j0 + j);
}

/* One chunk of cn instances of kern_dcf_eval. Always inlined so that the
 * callers with a literal width get their word loops unrolled. The output yc
 * doubles as the accumulator V (sum along the path of Convert(v) + t*V_CW);
 * party 1 negates it at the end. */
static inline __attribute__((always_inline)) int
eval_chunk(EVP_CIPHER_CTX *ctx, uint64_t party, unsigned nbits,
           const unsigned w, size_t cn, const uint8_t *keys, size_t kb,
           const uint64_t *x, uint64_t *yc, uint64_t *blk, uint64_t *seed,
           uint64_t *tb) {
  const unsigned h = (w + 1) / 2;
  const size_t bpi = 1u + h;
  const size_t lb = level_bytes(w);
  int rc;

  for (size_t i = 0; i < cn; i++) {
    const uint8_t *key = keys + i * kb;
    uint64_t lo = ld64(key), hi = ld64(key + 8);
    seed[2 * i] = lo;
    seed[2 * i + 1] = hi;
    tb[i] = party;
    eval_in(blk + i * bpi * 2, lo, hi, (x[i] >> (nbits - 1)) & 1, w, h);
    for (unsigned k = 0; k < w; k++)
      yc[i * w + k] = 0;
  }

  for (unsigned l = 0; l < nbits; l++) {
    const unsigned shift = nbits - 1 - l;
    const int last = l + 1 == nbits;
    rc = aes_blocks(ctx, blk, cn * bpi);
    if (rc != 0)
      return rc;

    for (size_t i = 0; i < cn; i++) {
      const uint8_t *cw = keys + i * kb + 16 + l * lb;
      /* Keys are walked with a stride of kb bytes, which no hardware
       * prefetcher follows; ask for the next level's words now, they are
       * needed a whole chunk later. The final correction follows the last
       * level, so the address stays inside the key. */
      __builtin_prefetch(cw + 2 * lb - 1);
      const uint64_t xb = (x[i] >> shift) & 1;
      const uint64_t lo = seed[2 * i], hi = seed[2 * i + 1];
      const uint64_t t = tb[i], mt = (uint64_t)0 - t;
      uint64_t *o = blk + i * bpi * 2;
      uint64_t n0 = le64(o[0]) ^ lo ^ xb, n1 = le64(o[1]) ^ hi;
      uint64_t tn = n0 & 1;
      n0 &= ~(uint64_t)1;
      n0 ^= ld64(cw) & mt;
      n1 ^= ld64(cw + 8) & mt;
      tn ^= ((uint64_t)cw[16] >> xb) & 1 & t;

      /* For odd width the right child's words start mid-block. */
      const uint64_t j0 = 2 + ((xb * w) >> 1);
      const unsigned off = (unsigned)((xb * w) & 1);
      uint64_t *yi = yc + i * w;
      for (unsigned k = 0; k < w; k++)
        yi[k] += val_word(o + 2, off + k, lo, hi, j0) +
                 (ld64(cw + 17 + 8 * k) & mt);
      seed[2 * i] = n0;
      seed[2 * i + 1] = n1;
      tb[i] = tn;

      /* The next AES inputs go where this instance's outputs were read: the
       * next level's child, or, after the last level, the h blocks of
       * Convert(s) packed at i*h (never beyond data not yet read, as h <
       * bpi). */
      if (!last) {
        eval_in(o, n0, n1, (x[i] >> (shift - 1)) & 1, w, h);
      } else {
        uint64_t *f = blk + i * h * 2;
        for (unsigned j = 0; j < h; j++)
          blk_in(f + 2 * j, n0, n1, 2 + j);
      }
    }
  }

  rc = aes_blocks(ctx, blk, cn * h);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < cn; i++) {
    const uint8_t *fcw = keys + i * kb + 16 + (size_t)nbits * lb;
    const uint64_t mt = (uint64_t)0 - tb[i];
    const uint64_t *o = blk + i * h * 2;
    uint64_t *yi = yc + i * w;
    for (unsigned k = 0; k < w; k++) {
      uint64_t v = val_word(o, k, seed[2 * i], seed[2 * i + 1], 2);
      yi[k] = cneg(yi[k] + v + (ld64(fcw + 8 * k) & mt), party);
    }
  }
  return 0;
}

int kern_dcf_eval(int party, unsigned nbits, unsigned width, size_t count,
                  const uint8_t *keys, const uint64_t *x, uint64_t *y) {
  size_t kb = kern_dcf_key_bytes(nbits, width);
  if (kb == 0 || (party != 0 && party != 1))
    return TANDEM_EINVAL;
  if (count == 0)
    return 0;
  if (keys == NULL || x == NULL || y == NULL || count > SIZE_MAX / kb)
    return TANDEM_EINVAL;

  const unsigned h = (width + 1) / 2;
  const size_t chunk = count < DCF_CHUNK ? count : DCF_CHUNK;
  size_t blk_words = chunk * (1u + h) * 2;
  size_t seed_words = chunk * 2;
  size_t total = blk_words + seed_words + chunk;
  uint64_t *scratch = malloc(total * sizeof(uint64_t));
  if (scratch == NULL)
    return TANDEM_ENOMEM;
  uint64_t *blk = scratch;
  uint64_t *seed = blk + blk_words;
  uint64_t *tb = seed + seed_words;

  int rc = 0;
  EVP_CIPHER_CTX *ctx = aes_open();
  if (ctx == NULL) {
    rc = TANDEM_ECRYPTO;
    goto fail;
  }

  /* x is read bit by bit below nbits only, which takes it mod 2^nbits. */
  const uint64_t b = (uint64_t)party;
  for (size_t c0 = 0; c0 < count && rc == 0; c0 += chunk) {
    size_t cn = count - c0 < chunk ? count - c0 : chunk;
    const uint8_t *kc = keys + c0 * kb;
    uint64_t *yc = y + c0 * width;
    /* Literal widths for the gates' common cases (ReLU and truncation use
     * 1 or 2 words), so the compiler unrolls their word loops. */
    switch (width) {
    case 1:
      rc = eval_chunk(ctx, b, nbits, 1, cn, kc, kb, x + c0, yc, blk, seed, tb);
      break;
    case 2:
      rc = eval_chunk(ctx, b, nbits, 2, cn, kc, kb, x + c0, yc, blk, seed, tb);
      break;
    default:
      rc = eval_chunk(ctx, b, nbits, width, cn, kc, kb, x + c0, yc, blk, seed,
                      tb);
      break;
    }
  }

fail:
  if (ctx != NULL)
    EVP_CIPHER_CTX_free(ctx);
  OPENSSL_cleanse(scratch, total * sizeof(uint64_t));
  free(scratch);
  if (rc != 0)
    OPENSSL_cleanse(y, count * width * sizeof(uint64_t));
  return rc;
}
