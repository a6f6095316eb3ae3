#!/usr/bin/env bash
# Shared helpers for every script and test that starts a DPDK process (vanishd, perf tools):
# hugepages or --no-huge, lcore lists, a private --file-prefix, empty pcap files, clean-up.
#
# Source it for the functions:   . scripts/lib.sh; vanish_eal_args myprefix 1
# or run it as a command (Python tests do):
#   scripts/lib.sh eal-args PREFIX [WORKERS]  EAL arguments, one per line: lcores, memory,
#                                            --file-prefix PREFIX, --no-pci
#   scripts/lib.sh mem-args                   the memory arguments alone, one per line
#   scripts/lib.sh lcore-args [WORKERS]       the lcore arguments alone (main lcore + WORKERS)
#   scripts/lib.sh new-prefix [NAME]          a fresh, unique --file-prefix
#   scripts/lib.sh cleanup PREFIX...          remove what DPDK left for these prefixes
#   scripts/lib.sh empty-pcap PATH...         write pcap files with a header and no packet
#
# Memory, decided in one place (vanish_mem_args):
#   VANISH_HUGE=0   always --no-huge
#   VANISH_HUGE=1   hugepages, fail if there are not enough
#   unset (auto)    hugepages if hugetlbfs is mounted and VANISH_DPDK_MEM_MB (default 512) MiB
#                   of free hugepages exist or can be reserved (nr_hugepages is only ever raised,
#                   never lowered: other processes may be using them); otherwise --no-huge.
# Hugepage files are unlinked as soon as they are mapped (--huge-unlink), so a crashed process
# leaves nothing in hugetlbfs; the runtime directory (/var/run/dpdk/PREFIX) is removed by
# vanish_dpdk_cleanup.

VANISH_DPDK_MEM_MB=${VANISH_DPDK_MEM_MB:-512}

# Mount point of the hugetlbfs with the default page size, or nothing.
vanish_hugetlbfs_dir() {
  [[ -n ${VANISH_HUGE_DIR:-} ]] && { echo "$VANISH_HUGE_DIR"; return; }
  [[ -d /dev/hugepages ]] && grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts &&
    { echo /dev/hugepages; return; }
  awk '$3 == "hugetlbfs" { print $2; exit }' /proc/mounts 2>/dev/null
}

_vanish_meminfo() { awk -v k="$1:" '$1 == k { print $2; exit }' /proc/meminfo 2>/dev/null; }

# Succeeds if MB MiB of hugepages are free, after trying to reserve the shortfall.
vanish_hugepages_ready() {
  local mb=${1:-$VANISH_DPDK_MEM_MB} size_kb free total need
  [[ -n $(vanish_hugetlbfs_dir) ]] || return 1
  size_kb=$(_vanish_meminfo Hugepagesize)
  [[ -n $size_kb && $size_kb -gt 0 ]] || return 1
  need=$(((mb * 1024 + size_kb - 1) / size_kb))
  free=$(_vanish_meminfo HugePages_Free)
  if ((${free:-0} < need)) && [[ -w /proc/sys/vm/nr_hugepages ]]; then
    total=$(cat /proc/sys/vm/nr_hugepages)
    echo $((total + need - ${free:-0})) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
    free=$(_vanish_meminfo HugePages_Free)
  fi
  ((${free:-0} >= need))
}

# The EAL memory arguments, one per line.
vanish_mem_args() {
  local mode=${VANISH_HUGE:-auto}
  if [[ $mode != 0 ]] && vanish_hugepages_ready "$VANISH_DPDK_MEM_MB"; then
    printf '%s\n' --huge-dir "$(vanish_hugetlbfs_dir)" --huge-unlink -m "$VANISH_DPDK_MEM_MB"
    return 0
  fi
  if [[ $mode == 1 ]]; then
    echo "lib.sh: VANISH_HUGE=1 but ${VANISH_DPDK_MEM_MB} MiB of hugepages are not available" >&2
    return 1
  fi
  printf '%s\n' --no-huge -m "$VANISH_DPDK_MEM_MB"
}

# lcore arguments for a main lcore plus WORKERS worker lcores. With fewer CPUs than lcores the
# lcores float over all CPUs (vanishd's workers back off when idle, so this works for tests).
vanish_lcore_args() {
  local workers=${1:-1} ncpu
  ncpu=$(nproc 2>/dev/null || echo 1)
  if ((ncpu >= workers + 1)); then
    printf '%s\n' -l "0-$workers"
  else
    printf '%s\n' --lcores "(0-$workers)@(0-$((ncpu - 1)))"
  fi
}

# A unique file prefix: vanish-NAME-PID-RANDOM (DPDK keeps it short enough for socket paths).
vanish_new_prefix() {
  echo "vanish-${1:-run}-$$-$RANDOM"
}

# All EAL arguments except the devices, one per line.
vanish_eal_args() {
  local prefix=${1:?prefix} workers=${2:-1}
  vanish_lcore_args "$workers" || return 1
  vanish_mem_args || return 1
  printf '%s\n' --file-prefix "$prefix" --no-pci
}

# Removes the runtime directory (and any hugepage file) a DPDK process left for each prefix.
vanish_dpdk_cleanup() {
  local p dir hd
  hd=$(vanish_hugetlbfs_dir)
  for p in "$@"; do
    [[ -n $p && $p != */* ]] || continue
    for dir in /var/run/dpdk "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk"; do
      [[ -d $dir/$p ]] && rm -rf -- "${dir:?}/$p"
    done
    [[ -n $hd ]] && rm -f -- "$hd/${p}map_"* 2>/dev/null
  done
  return 0
}

# Writes a valid pcap (24-byte header, Ethernet link type, no packet) to each path: net_pcap
# needs one for an rx_pcap without traffic.
vanish_empty_pcap() {
  local f
  for f in "$@"; do
    # magic a1b2c3d4 (little-endian), version 2.4, tz 0, sigfigs 0, snaplen 65535, linktype 1
    printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00' >"$f"
  done
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  cmd=${1:-}
  shift || true
  case $cmd in
    eal-args) vanish_eal_args "$@" ;;
    mem-args) vanish_mem_args ;;
    lcore-args) vanish_lcore_args "$@" ;;
    new-prefix) vanish_new_prefix "$@" ;;
    cleanup) vanish_dpdk_cleanup "$@" ;;
    empty-pcap) vanish_empty_pcap "$@" ;;
    *)
      sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
fi
