#!/usr/bin/env bash
# scripts/bootstrap.sh's apt-get wrapper (scripts/apt_get_wait.sh) waits for another package manager's lock
# instead of failing at once, gives up with one line after APT_LOCK_WAIT, and passes other failures straight
# through. Checked with a stand-in apt-get on PATH that is locked for its first tries.
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
# stand-in apt-get: LOCKED_TRIES tries fail like a held lock (apt's own message), then OUTCOME (ok | broken)
cat > "$tmp/bin/apt-get" <<'EOS'
#!/usr/bin/env bash
n=$(( $(cat "$STATE.count" 2>/dev/null || echo 0) + 1 )); echo $n > "$STATE.count"
printf '%s\n' "$*" >> "$STATE.args"
if [ "$n" -le "$LOCKED_TRIES" ]; then
  echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
  echo "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?" >&2
  exit 100
fi
[ "$OUTCOME" = ok ] && exit 0
echo "E: Unable to locate package no-such-package" >&2
exit 100
EOS
chmod +x "$tmp/bin/apt-get"
run() {   # LOCKED_TRIES OUTCOME WAIT: runs the wrapper, sets rc, err, tries, secs
  rm -f "$tmp/s.count" "$tmp/s.args"
  local t0=$(date +%s)
  PATH="$tmp/bin:$PATH" STATE="$tmp/s" LOCKED_TRIES=$1 OUTCOME=$2 APT_LOCK_WAIT=$3 APT_LOCK_POLL=1 \
    scripts/apt_get_wait.sh install -y foo > /dev/null 2> "$tmp/err"
  rc=$?
  secs=$(( $(date +%s) - t0 )); tries=$(cat "$tmp/s.count")
}
run 2 ok 30
[ $rc = 0 ] && [ "$tries" = 3 ] && ok "lock held for 2 tries: waited and installed on the 3rd ($secs s)" ||
  bad "lock held for 2 tries" "rc $rc, $tries tries: $(cat "$tmp/err")"
grep -q 'waiting up to 30 s (held by process 4242 (apt-get))' "$tmp/err" && [ "$(grep -c waiting "$tmp/err")" = 1 ] &&
  ok "says once that it waits, naming the holder" || bad "says once that it waits" "$(cat "$tmp/err")"
grep -q -- '-o DPkg::Lock::Timeout=[0-9]* install -y foo' "$tmp/s.args" && ok "apt-get asked to wait for the dpkg lock itself" ||
  bad "DPkg::Lock::Timeout passed" "$(cat "$tmp/s.args")"
run 1000 ok 3
[ $rc = 100 ] && [ "$secs" -ge 3 ] && [ "$secs" -le 8 ] && [ "$(wc -l < "$tmp/err")" = 2 ] &&
  tail -n 1 "$tmp/err" | grep -q 'apt_get_wait.sh: error: apt-get install: still locked after 3 s: E: Could not get lock' &&
  ok "lock never released: one-line error after APT_LOCK_WAIT ($secs s)" ||
  bad "lock never released" "rc $rc after $secs s: $(cat "$tmp/err")"
run 0 broken 30
[ $rc = 100 ] && [ "$tries" = 1 ] && grep -q 'Unable to locate package' "$tmp/err" &&
  ok "other failures are not retried and keep apt-get's message and status" || bad "other failure" "rc $rc, $tries tries"
grep -q 'apt_get_wait.sh' scripts/bootstrap.sh && ! grep -qE '^\s*\$SUDO apt-get' scripts/bootstrap.sh &&
  ok "bootstrap.sh installs through the waiting wrapper" || bad "bootstrap.sh uses the wrapper" "$(grep apt-get scripts/bootstrap.sh)"
echo "RESULT passed=$pass failed=$fail"
