// The process's memory allocator, set once at start for tensors (trafficid and the benchmarks).
#pragma once

namespace trafficid::host {

// glibc's malloc serves every block above its mmap threshold (dynamic, at most 32 MiB) with a
// fresh mmap and returns it with munmap on free. A training step of the paper's CNN (10.1 M
// parameters, batch 128) allocates and frees blocks of 24-40 MB (activations, the optimizer's
// temporaries) every step, so every step page-faulted them in anew: 70% of its time was the
// kernel's. Blocks up to 1 GiB now come from the heap, and up to 256 MiB freed at its top is kept
// for the next step: 4.5x the training and 5.5x the inference samples/s measured here
// (tests/bench/cnn_bench.sh). TRAFFICID_MALLOC=default leaves glibc's defaults (to measure them).
void tune_allocator();

}  // namespace trafficid::host
