#!/usr/bin/env bash
# Reproduces Tessera's throughput figures.
#
# Runs the same load (`tessera bench`: initiate + validate pairs with a
# forced code) against, in turn:
#   1. the trivial baseline server (`tessera bench -serve-trivial`), the
#      ceiling of this machine, HTTP stack and load generator;
#   2. `tessera serve` on SQLite, in a fresh data directory;
#   3. `tessera serve` on PostgreSQL, in a dedicated, freshly created
#      database `tessera_bench`, if PostgreSQL is reachable.
# and prints a summary table. Everything listens on 127.0.0.1 only and every
# process started here is killed on exit.
#
# Environment:
#   BENCH_DURATION      measured run length per target     (default 10s)
#   BENCH_CONCURRENCY   concurrent clients                  (default 32)
#   BENCH_WARMUP        unmeasured warm-up per target, 0 to skip (default 2s)
#   BENCH_METHOD        verification method, email or phone (default email)
#   BENCH_OUT           if set, a directory to keep raw JSON results and logs in
#   TESSERA_BIN         use this tessera binary instead of building ./cmd/tessera
#   TESSERA_BENCH_POSTGRES_URL
#                       admin connection to PostgreSQL; the database
#                       tessera_bench is dropped and recreated through it.
#                       Default postgres://postgres@127.0.0.1:5432/test?sslmode=disable;
#                       set it to the empty string to skip PostgreSQL.
#
# Usage: scripts/bench.sh
set -euo pipefail

DURATION=${BENCH_DURATION:-10s}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
WARMUP=${BENCH_WARMUP:-2s}
METHOD=${BENCH_METHOD:-email}
# No colon: an explicitly empty value disables the PostgreSQL run.
PG_URL=${TESSERA_BENCH_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
PG_DB=tessera_bench

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")

log() { printf '>> %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

# pids holds every background process not yet reaped; forget() removes
# reaped ones so that cleanup never signals a recycled pid.
pids=()
pg_created=

forget() {
	local p keep=()
	for p in "${pids[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

# stop PID: terminates a background process and reaps it.
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	forget "$1"
}

cleanup() {
	local status=$? pid
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n $pg_created ]]; then
		PGOPTIONS="-c client_min_messages=warning" psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 ||
			log "could not drop database $PG_DB"
	fi
	if [[ -n ${BENCH_OUT:-} ]]; then
		mkdir -p "$BENCH_OUT"
		cp "$tmp"/*.json "$tmp"/*.log "$BENCH_OUT"/ 2>/dev/null || true
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints a currently unused loopback TCP port.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_healthy URL PID LOG: waits until URL/healthz answers 200, failing
# early if the server process dies.
wait_healthy() {
	local url=$1 pid=$2 logfile=$3 i
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$logfile" >&2 || true
			die "server exited before becoming healthy (log above)"
		fi
		if python3 - "$url/healthz" <<-'EOF' 2>/dev/null; then
			import sys, urllib.request
			with urllib.request.urlopen(sys.argv[1], timeout=1) as r:
			    sys.exit(r.status != 200)
		EOF
			return 0
		fi
		sleep 0.1
	done
	tail -n 20 "$logfile" >&2 || true
	die "server at $url not healthy after 30s (log above)"
}

# load NAME URL SERVER_PID [TOKEN]: warms up, runs the measured load into
# $tmp/NAME.json and records the server's peak resident memory.
load() {
	local name=$1 url=$2 server=$3 token=${4:-} pid rss
	local args=(-url "$url" -c "$CONCURRENCY" -method "$METHOD" -json)
	# The token travels in the environment, not argv, to keep it out of ps.
	if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
		log "$name: warm-up $WARMUP"
		TESSERA_TOKEN=$token "$bin" bench "${args[@]}" -d "$WARMUP" >/dev/null &
		pid=$!
		pids+=("$pid")
		wait "$pid"
		forget "$pid"
	fi
	log "$name: load $DURATION, $CONCURRENCY clients"
	# In the background so that a signal to this script is handled at once.
	TESSERA_TOKEN=$token "$bin" bench "${args[@]}" -d "$DURATION" >"$tmp/$name.json" &
	pid=$!
	pids+=("$pid")
	wait "$pid"
	forget "$pid"
	# VmHWM is the peak resident set size since the server started, in kB.
	rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status")
	printf '%s\t%s\n' "$name" "${rss:-0}" >>"$tmp/results.tsv"
	python3 - "$tmp/$name.json" <<-'EOF' >&2
		import json, sys
		r = json.load(open(sys.argv[1]))
		print(f"   {r['pairs_per_sec']:.0f} pairs/s, p50 {r['request_p50_ms']:.2f}ms, "
		      f"p99 {r['request_p99_ms']:.2f}ms, {r['errors']} errors")
		for e in r["error_samples"]:
		    print(f"   {e['count']} x {e['message']}")
	EOF
}

# serve_tessera NAME DATA_DIR [DATABASE_URL]: creates an API client, starts
# `tessera serve`, runs the load against it and stops it.
serve_tessera() {
	local name=$1 data=$2 db=${3:-} port url pid token
	# The per-API-client limit (100/s by default) would measure the limit,
	# not Tessera: the benchmark switches it off.
	local envs=(TESSERA_DATA_DIR="$data" TESSERA_LIMIT_CLIENT=off)
	# PostgreSQL needs keys given, not generated (instances must share them).
	[[ -z $db ]] || envs+=(TESSERA_DATABASE_URL="$db"
		TESSERA_HMAC_KEY="$(head -c 32 /dev/urandom | base64)"
		TESSERA_ENCRYPTION_KEYS="k1:$(head -c 32 /dev/urandom | base64)")
	mkdir -p "$data"

	# Created before the server starts, so the server sees it from the
	# start whatever it caches; the token is the last line of stdout.
	token=$(env "${envs[@]}" "$bin" client create bench | tail -n 1)
	[[ -n $token ]] || die "$name: tessera client create printed no token"

	port=$(free_port)
	url=http://127.0.0.1:$port
	log "$name: starting tessera serve on $url"
	# The log sender writes a line per message to stderr: keep it in a file,
	# out of the terminal but available if the server fails.
	env "${envs[@]}" TESSERA_ADDR="127.0.0.1:$port" "$bin" serve >"$tmp/$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait_healthy "$url" "$pid" "$tmp/$name.log"
	load "$name" "$url" "$pid" "$token"
	stop "$pid"
}

command -v python3 >/dev/null || die "python3 is required"

if [[ -n ${TESSERA_BIN:-} ]]; then
	bin=$TESSERA_BIN
else
	log "building tessera"
	(cd "$root" && go build -o "$tmp/tessera" ./cmd/tessera)
	bin=$tmp/tessera
fi

# 1. Trivial baseline.
port=$(free_port)
url=http://127.0.0.1:$port
log "trivial: starting baseline on $url"
"$bin" bench -serve-trivial "127.0.0.1:$port" >"$tmp/trivial.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_healthy "$url" "$pid" "$tmp/trivial.log"
load trivial "$url" "$pid"
stop "$pid"

# 2. SQLite.
serve_tessera sqlite "$tmp/sqlite-data"

# 3. PostgreSQL, in a database of its own so that neither its schema nor its
#    rows clash with other users of the server.
if [[ -z $PG_URL ]]; then
	log "postgres: skipped (TESSERA_BENCH_POSTGRES_URL is empty)"
elif ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then
	log "postgres: skipped (pg_isready or psql not installed)"
elif ! pg_isready -q -d "$PG_URL"; then
	log "postgres: skipped (not ready at $PG_URL)"
else
	bench_url=$(python3 -c '
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_URL" "$PG_DB")
	log "postgres: recreating database $PG_DB"
	PGOPTIONS="-c client_min_messages=warning" psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null
	PGOPTIONS="-c client_min_messages=warning" psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >/dev/null
	pg_created=1
	serve_tessera postgres "$tmp/postgres-data" "$bench_url"
fi

# Summary.
echo
python3 - "$tmp" "$DURATION" "$CONCURRENCY" "$METHOD" <<'EOF'
import json, os, platform, sys

tmp, duration, concurrency, method = sys.argv[1:5]
rows = []
with open(os.path.join(tmp, "results.tsv")) as f:
    for line in f:
        name, rss_kb = line.split()
        with open(os.path.join(tmp, name + ".json")) as j:
            rows.append((name, json.load(j), int(rss_kb)))

cpu = platform.processor() or platform.machine()
try:
    with open("/proc/cpuinfo") as f:
        cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
except (OSError, StopIteration):
    pass
print(f"{os.cpu_count()} CPUs ({cpu}), {duration} per target, "
      f"{concurrency} clients, method {method}; load generator on the same machine")
print("p50/p99: per-request latency in ms; ratio: pairs/s relative to trivial\n")

base = rows[0][1]["pairs_per_sec"] if rows and rows[0][0] == "trivial" else 0
table = [("target", "pairs/s", "p50", "p99", "errors", "peak RSS", "ratio to trivial")]
for name, r, rss in rows:
    table.append((
        name,
        f"{r['pairs_per_sec']:.0f}",
        f"{r['request_p50_ms']:.2f}",
        f"{r['request_p99_ms']:.2f}",
        str(r["errors"]),
        f"{rss / 1024:.0f} MiB",
        f"{r['pairs_per_sec'] / base:.3f}" if base else "-",
    ))
widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
def fmt(row):
    cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
    return "| " + " | ".join(cells) + " |"
print(fmt(table[0]))
print("|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|")
for row in table[1:]:
    print(fmt(row))
EOF
