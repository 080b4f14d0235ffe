#!/usr/bin/env bash
# labels: unit
#
# test_layers.sh - the house drawing holds: apps -> mpc/src/cluster -> {mpc
# core, net}, mpc core -> kernels, with no arrow back. A header of a higher
# layer included below it fails here, naming the file and the line.
set -u
SRC=${TANDEM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/loopback/lib.sh"
cd "$SRC"
# forbid DIRS... -- HEADERS...: no file under DIRS includes any of HEADERS.
forbid() {
  local dirs=() hdrs=()
  while [ "$1" != "--" ]; do dirs+=("$1"); shift; done
  shift
  hdrs=("$@")
  for h in "${hdrs[@]}"; do
    while IFS= read -r hit; do
      fail "arrow back: $hit includes $h"
    done < <(grep -rn --include='*.c' --include='*.h' "#include *[\"<]$h[\">]" "${dirs[@]}" 2>/dev/null)
  done
}
# kernels/ knows nothing above it; net/ knows no mpc; the mpc core knows no
# cluster, no net, no app; the cluster knows no app.
forbid kernels -- mpc.h mpc_int.h mpc_cluster.h cluster_int.h net.h net_int.h apps.h daemon.h
forbid net -- mpc.h mpc_int.h mpc_cluster.h cluster_int.h kern.h apps.h daemon.h
forbid $(ls -d mpc/src/*.c mpc/src/*.h mpc/include/mpc.h) -- mpc_cluster.h cluster_int.h net.h net_int.h apps.h daemon.h
forbid mpc/src/cluster mpc/include/mpc_cluster.h -- apps.h daemon.h lcluster.h
finish
