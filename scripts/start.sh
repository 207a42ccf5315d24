#!/bin/sh
# Starts the compiled service with the memory settings it was measured with.
# Native memory (libvips, the C allocator) is the real budget; the figures
# behind each choice are in docs/memory.md.
set -e
cd "$(dirname "$0")/.."

# The allocator is glibc's, set up below; an LD_PRELOAD the operator sets
# (jemalloc, say) is left alone. jemalloc was measured too and kept more: 6 MP
# photos, 5 conversions at once, peak/settled 318/139 MB against 278/111 MB
# with these settings; the soak's 2 MP load peaked at 239 against ~175 MiB.

# glibc makes up to 8 malloc arenas per core; image threads spread their
# buffers over all of them and RSS plateaus high (~560 MB after a burst of
# 6 MP conversions). Two arenas keep it near 270 MB at the same throughput.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"

# glibc serves a block larger than its mmap threshold (128 KiB) with a mapping
# of its own, unmapped on free, but raises that threshold to the size of each
# such block freed (up to 32 MiB): after the first image, libvips' and
# libwebp's multi-MB picture buffers come from the arenas instead and their
# freed pages stay resident. Fixing the threshold (setting it turns the raising
# off) gives them back at once: the soak's peak fell from ~190 to ~166 MiB
# (300 jobs of a 2 MP photo). The cost is below.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"

# Each such buffer is a fresh mapping, filled page by page: the page faults
# cost libvips ~7 ms of system time per 2 MP image, ~6 % of a conversion.
# Transparent huge pages on malloc's mappings (glibc 2.35 and later; older
# glibc ignores the tunable, and it does nothing when THP is off) cut that to
# ~5 ms: +3 to +5 % images/s in paired runs, peak RSS +0 to +4 MiB. An
# operator's own GLIBC_TUNABLES is left alone.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"

# libuv's pool runs each sharp conversion from start to end, and also file
# I/O and dns.lookup: keep room for those beside the conversions in flight,
# or uploads and fsyncs wait behind images.
if [ -z "${UV_THREADPOOL_SIZE:-}" ]; then
  cores=$(nproc 2>/dev/null || echo 2)
  export UV_THREADPOOL_SIZE=$(( ${CONVERT_CONCURRENCY:-$cores} + 4 ))
fi

# Settings from ENV_FILE, or from .env in the checkout when there is one;
# the environment wins over the file (Node's --env-file). Node reads the
# file itself, after this script: the allocator and CONVERT_CONCURRENCY
# above see the environment only. Node 20 refuses a missing file, hence
# the test; an ENV_FILE that was asked for and is missing stops the start.
env_file="${ENV_FILE:-}"
if [ -z "$env_file" ] && [ -f .env ]; then env_file=.env; fi
if [ -n "$env_file" ]; then
  exec node --env-file="$env_file" --enable-source-maps dist/main.js
fi
exec node --enable-source-maps dist/main.js
