/* Core clock from a dependent chain of 64-bit integer multiplies: each waits 3 cycles for the previous one,
   so cycles = 3 × multiplies. Timed in thread CPU time, so time spent descheduled does not count. Prints the
   median of 5 runs in GHz. (A chain of adds is no good: recent Intel cores fold dependent immediate adds.) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    (void)argv;
    const unsigned long loops = 50000000UL; /* × 10 multiplies */
    unsigned long factor = (unsigned long)argc + 2, value = 1;
    double ghz[5];
    for (int run = 0; run < 5; run++) {
        double start = thread_seconds();
        for (unsigned long i = 0; i < loops; i++) {
            __asm__ volatile(
                "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\t"
                "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0"
                : "+r"(value) : "r"(factor));
        }
        ghz[run] = 30.0 * loops / (thread_seconds() - start) / 1e9;
    }
    qsort(ghz, 5, sizeof ghz[0], compare);
    printf("%.3f %lu\n", ghz[2], value & 1);
    return 0;
}
