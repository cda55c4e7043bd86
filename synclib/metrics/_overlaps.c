/* The areas of S_f^I and of S_f^I ∩ mask_k^I for every image and filter, without upsampling.
 *
 * The bilinearly upsampled map is cut into (H+1) x (W+1) cells by the map's row and column
 * centres (the outer cells are flat: they repeat the border values). A cell's values lie
 * between the least and the largest of its four corner values, so a cell wholly above the
 * threshold adds its mask counts, a cell wholly below adds nothing, and only a cell the
 * threshold passes through is walked row by row: along a row its value is linear, so its
 * pixels above the threshold form one interval, counted by the mask row's prefix sums.
 * Called through ctypes by synclib.metrics.native; the PyTorch code in hits.py is the same
 * computation for devices and machines without a C compiler.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static int64_t clampi(double v, int64_t lo, int64_t hi) {
    return v < (double)lo ? lo : (v > (double)hi ? hi : (int64_t)v);
}

int synclib_region_overlaps(const float *a, const float *t, const uint8_t *masks,
                            int64_t B, int64_t N, int64_t H, int64_t W, int64_t K, int64_t S,
                            const int64_t *ey, const double *lamy, const int64_t *ex, double ratio,
                            int64_t *inter, int64_t *area) {
    const int64_t P = S + 1, WP = W + 2, C = (H + 1) * (W + 1);
    int32_t *pref = malloc(sizeof(int32_t) * S * P * K); /* [y][x][k]: mask pixels left of x */
    int64_t *cnt = malloc(sizeof(int64_t) * C * K);     /* [cell][k]: mask pixels in the cell */
    double *pc = malloc(sizeof(double) * (H + 2) * WP);  /* the map, padded by repetition */
    if (!pref || !cnt || !pc) {
        free(pref); free(cnt); free(pc);
        return 1;
    }
    for (int64_t b = 0; b < B; b++) {
        for (int64_t y = 0; y < S; y++)
            for (int64_t k = 0; k < K; k++) {
                const uint8_t *row = masks + ((b * K + k) * S + y) * S;
                int32_t run = 0;
                pref[(y * P) * K + k] = 0;
                for (int64_t x = 0; x < S; x++) {
                    run += row[x] != 0;
                    pref[(y * P + x + 1) * K + k] = run;
                }
            }
        for (int64_t cy = 0; cy <= H; cy++)
            for (int64_t cx = 0; cx <= W; cx++)
                for (int64_t k = 0; k < K; k++) {
                    int64_t s = 0;
                    for (int64_t y = ey[cy]; y < ey[cy + 1]; y++)
                        s += pref[(y * P + ex[cx + 1]) * K + k] - pref[(y * P + ex[cx]) * K + k];
                    cnt[(cy * (W + 1) + cx) * K + k] = s;
                }
        for (int64_t n = 0; n < N; n++) {
            const float *m = a + (b * N + n) * H * W;
            const double tn = t[n];
            for (int64_t i = 0; i < H + 2; i++)
                for (int64_t j = 0; j < WP; j++) {
                    int64_t si = i == 0 ? 0 : (i > H ? H - 1 : i - 1), sj = j == 0 ? 0 : (j > W ? W - 1 : j - 1);
                    pc[i * WP + j] = m[si * W + sj];
                }
            int64_t *out = inter + (b * N + n) * K, ar = 0;
            for (int64_t cy = 0; cy <= H; cy++)
                for (int64_t cx = 0; cx <= W; cx++) {
                    const double c00 = pc[cy * WP + cx], c01 = pc[cy * WP + cx + 1];
                    const double c10 = pc[(cy + 1) * WP + cx], c11 = pc[(cy + 1) * WP + cx + 1];
                    const double hi = fmax(fmax(c00, c01), fmax(c10, c11));
                    const double lo = fmin(fmin(c00, c01), fmin(c10, c11));
                    const int64_t xs = ex[cx], xe = ex[cx + 1];
                    if (!(hi > tn) || xs == xe || ey[cy] == ey[cy + 1])
                        continue;
                    if (lo > tn) { /* the whole cell */
                        const int64_t *c = cnt + (cy * (W + 1) + cx) * K;
                        for (int64_t k = 0; k < K; k++)
                            out[k] += c[k];
                        ar += (ey[cy + 1] - ey[cy]) * (xe - xs);
                        continue;
                    }
                    const double x0 = ratio * ((double)cx - 0.5) - 0.5; /* the left centre's pixel position */
                    for (int64_t y = ey[cy]; y < ey[cy + 1]; y++) {
                        const double mu = lamy[y];
                        const double r0 = c00 + mu * (c10 - c00), r1 = c01 + mu * (c11 - c01), d = r1 - r0;
                        int64_t l = xs, h = xe;
                        if (d == 0) {
                            if (!(r0 > tn))
                                continue;
                        } else {
                            const double xb = x0 + (tn - r0) / d * ratio; /* where the row crosses T */
                            if (d > 0)
                                l = clampi(floor(xb) + 1, xs, xe);
                            else
                                h = clampi(ceil(xb), xs, xe);
                        }
                        if (h <= l)
                            continue;
                        ar += h - l;
                        const int32_t *ph = pref + (y * P + h) * K, *pl = pref + (y * P + l) * K;
                        for (int64_t k = 0; k < K; k++)
                            out[k] += ph[k] - pl[k];
                    }
                }
            area[b * N + n] = ar;
        }
    }
    free(pref); free(cnt); free(pc);
    return 0;
}
