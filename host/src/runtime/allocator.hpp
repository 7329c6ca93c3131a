// The process's memory allocator, set once at start (trafficid and the benchmarks).
#pragma once

namespace trafficid::host {

// Called first thing in main(). Three settings of glibc's malloc:
// - Blocks up to 1 GiB come from the heap, and up to 256 MiB freed at its top is kept. glibc
//   served every block above its mmap threshold (dynamic, at most 32 MiB) with a fresh mmap and
//   returned it with munmap on free; a training step of the paper's CNN (10.1 M parameters, batch
//   128) allocates and frees blocks of 24-40 MB every step, so every step page-faulted them in
//   anew: 70% of its time was the kernel's. 5.4x the training samples/s (tests/bench/cnn_bench.sh).
// - The heap in transparent huge pages (the tunable glibc.malloc.hugetlb=1: one fault per 2 MiB
//   instead of per 4 KiB), for the labelling of captures of many new flows, whose records and
//   nDPI state fill the heap page by page: `trafficid label` 1.3-1.5x faster (label_bench.sh,
//   DISTINCT=1). A tunable is read when a process starts, so the process executes itself again
//   once, with GLIBC_TUNABLES extended (and TRAFFICID_MALLOC_SET=1, so it does so only once; an
//   executable run with file capabilities ignores tunables, and goes on without).
// - The heap grows 64 MiB at a time (M_TOP_PAD; glibc's default is 128 KiB), so filling it with a
//   capture's flows is a few hundred brk/mprotect calls instead of thousands (sysmalloc was 5% of
//   prepro's samples). On the 1 GB capture of new flows, 3 alternating pairs differing in this
//   only: prepro 3.57-3.62 s instead of 4.03-4.12, label (2 threads) 3.23-3.53 instead of
//   3.61-3.78, for 13-30 MB more at the peak (pages never touched stay unbacked).
// TRAFFICID_MALLOC=default leaves glibc's defaults (to measure them).
void tune_allocator(char** argv);

}  // namespace trafficid::host
