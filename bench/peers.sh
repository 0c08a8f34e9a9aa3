#!/usr/bin/env bash
# Side-by-side benchmark: smsgate, gammu-smsd and SMSTools3 (default and
# tuned configurations) and a raw AT loop, each on its own instant modem of
# one `smsgate sim`. Prints a markdown table; raw runs land in
# bench/results/<UTC time>/. See docs/benchmarks.md.
#
#   bash bench/peers.sh                 # 3 runs (~10 min)
#   bash bench/peers.sh --runs 1        # any flag of the bench, see --help
#   SMSGATE_CORPUS=/path/to/corpus bash bench/peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The peers, from Debian's packages, when missing.
missing=()
command -v gammu-smsd >/dev/null || missing+=(gammu gammu-smsd)
command -v smsd >/dev/null || [ -x /usr/sbin/smsd ] || missing+=(smstools)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} (apt-get)" >&2
    $sudo apt-get update -qq
    # Installing must not start the packages' own system services.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    for svc in gammu-smsd smstools; do
        $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
fi

# The peers' configurations are read from the corpus at run time:
# $SMSGATE_CORPUS, else ../shared/corpus beside the repository.

# cargo bench builds in release (the bench profile) and runs the target.
exec cargo bench --bench peers -- "$@"
