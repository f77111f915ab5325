#!/usr/bin/env bash
# apt_get_wait.sh ARGS...: apt-get ARGS, waiting for another apt-get/dpkg (unattended upgrades, a second
# bootstrap) to release its lock instead of failing at once. apt-get itself waits for the dpkg lock with
# -o DPkg::Lock::Timeout; the package-list and archive locks (apt-get update, downloads) are not covered by
# that option on every apt version, so a run that still fails on a lock is retried until the same deadline.
#   APT_LOCK_WAIT  seconds to wait in all (default 900)      APT_LOCK_POLL  seconds between tries (default 5)
# Exit status: apt-get's; after the deadline, a one-line error naming the lock holder's message.
set -uo pipefail
wait_s=${APT_LOCK_WAIT:-900}
poll=${APT_LOCK_POLL:-5}
case "$wait_s$poll" in *[!0-9]*) echo "apt_get_wait.sh: error: APT_LOCK_WAIT/APT_LOCK_POLL must be integers" >&2; exit 2 ;; esac
deadline=$(( $(date +%s) + wait_s ))
err=$(mktemp); trap 'rm -f "$err"' EXIT
said=0
while :; do
  left=$(( deadline - $(date +%s) )); [ $left -gt 0 ] || left=0
  apt-get -o DPkg::Lock::Timeout="$left" "$@" 2> "$err"; rc=$?
  [ $rc = 0 ] && { cat "$err" >&2; exit 0; }
  if ! grep -qiE 'could not get lock|unable to lock|unable to acquire the dpkg frontend lock|is held by process' "$err"; then
    cat "$err" >&2
    exit $rc
  fi
  if [ "$(date +%s)" -ge $deadline ]; then
    echo "apt_get_wait.sh: error: apt-get $1: still locked after ${wait_s} s: $(grep -iE 'lock' "$err" | head -n 1)" >&2
    exit $rc
  fi
  if [ $said = 0 ]; then
    echo "bootstrap: another package manager holds the apt/dpkg lock; waiting up to ${wait_s} s ($(grep -oiE 'held by process [0-9]+ \([^)]*\)' "$err" | head -n 1))" >&2
    said=1
  fi
  sleep "$poll"
done
