/* dcf_lanes256.h - the DCF walk's lane hooks (dcf_walk.h) on 256-bit
 * vectors of 2 instances: the strided loads and stores of a vector's
 * lanes and the contiguous key-field moves (DCF_HAVE_KLD). Shared by the two
 * walks on 256-bit vectors, aes_vaes256.c (VAES rounds) and aes_ni256.c
 * (AES-NI rounds on each 128-bit lane), which include it after defining vq;
 * private to this directory, compiled under the includer's ISA flags. */
#ifndef TANDEM_DCF_LANES256_H
#define TANDEM_DCF_LANES256_H

/* Lane j's address: lanes past n repeat lane n - 1. */
static inline const uint8_t *lane(const uint8_t *p, size_t s, unsigned j,
                                  unsigned n) {
  return p + (size_t)(j < n ? j : n - 1) * s;
}

static inline vq dcf_ld16(const uint8_t *p, size_t s, unsigned n) {
  __m128i a = _mm_loadu_si128((const __m128i *)p);
  __m128i b = _mm_loadu_si128((const __m128i *)lane(p, s, 1, n));
  return (vq)_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
}

static inline vq dcf_ld8(const uint8_t *p, size_t s, unsigned n) {
  __m128i a = _mm_loadl_epi64((const __m128i *)p);
  __m128i b = _mm_loadl_epi64((const __m128i *)lane(p, s, 1, n));
  return (vq)_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
}

static inline void dcf_st16(uint8_t *p, size_t s, vq v, unsigned n) {
  if (n > 0)
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128((__m256i)v));
  if (n > 1)
    _mm_storeu_si128((__m128i *)(p + s), _mm256_extracti128_si256((__m256i)v, 1));
}

static inline void dcf_st8(uint8_t *p, size_t s, vq v, unsigned n) {
  if (n > 0)
    _mm_storel_epi64((__m128i *)p, _mm256_castsi256_si128((__m256i)v));
  if (n > 1)
    _mm_storel_epi64((__m128i *)(p + s), _mm256_extracti128_si256((__m256i)v, 1));
}

/* The key fields of a vector's two lanes are contiguous (dcf_walk.h): one
 * 256-bit move for the two seeds; two 8-byte words are spread to (or
 * gathered from) the low halves of the lanes with one permute. */
#define DCF_HAVE_KLD 1

static inline vq dcf_kld16(const uint8_t *p, unsigned n) {
  if (n > 1)
    return (vq)_mm256_loadu_si256((const __m256i *)p);
  return (vq)_mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)p));
}

static inline vq dcf_kld8(const uint8_t *p, unsigned n) {
  __m128i w = n > 1 ? _mm_loadu_si128((const __m128i *)p)
                    : _mm_loadl_epi64((const __m128i *)p);
  return (vq)_mm256_permute4x64_epi64(_mm256_zextsi128_si256(w), 0x50);
}

static inline void dcf_kst16(uint8_t *p, vq v, unsigned n) {
  if (n > 1)
    _mm256_storeu_si256((__m256i *)p, (__m256i)v);
  else if (n == 1)
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128((__m256i)v));
}

static inline void dcf_kst8(uint8_t *p, vq v, unsigned n) {
  __m128i w = _mm256_castsi256_si128(_mm256_permute4x64_epi64((__m256i)v, 0x08));
  if (n > 1)
    _mm_storeu_si128((__m128i *)p, w);
  else if (n == 1)
    _mm_storel_epi64((__m128i *)p, w);
}

#endif /* TANDEM_DCF_LANES256_H */
