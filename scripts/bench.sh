#!/usr/bin/env bash
# Reproduces Tessera's throughput figures.
#
# Runs the same load (`tessera bench`: initiate + validate pairs with a
# forced code) against, in turn:
#   1. the trivial baseline server (`tessera bench -serve-trivial`), the
#      ceiling of this machine, HTTP stack and load generator;
#   2. `tessera serve` on SQLite, in a fresh data directory;
#   3. `tessera serve` on PostgreSQL, in a dedicated, freshly created
#      database `tessera_bench`, if PostgreSQL is reachable;
# then, on SQLite (a fresh server on the same data directory):
#   4. password logins/s (`tessera bench -mode login`, 2 clients) against
#      the raw argon2id rate with the same parameters on 2 goroutines
#      (`tessera bench -mode argon2`), and the server's peak RSS meanwhile;
#   5. refresh-token rotations/s over a long run (`-mode refresh`), the
#      first 10 s against the last 10 s;
# and prints one table. For SQLite it also reports the WAL file's size at
# the end of the pairs run and its peak (sampled every 0.2 s). With
# BENCH_ROWS each database is pre-filled with that many verifications
# (direct SQL inserts) before the pairs run. Everything listens on
# 127.0.0.1 only and every process started here is killed on exit.
#
# Environment:
#   BENCH_DURATION      measured run length per target     (default 10s)
#   BENCH_CONCURRENCY   concurrent clients                  (default 32)
#   BENCH_WARMUP        unmeasured warm-up per target, 0 to skip (default 2s)
#   BENCH_METHOD        verification method, email or phone (default email)
#   BENCH_ROWS          verifications stored before the pairs run, e.g. 1000000 (default 0)
#   BENCH_ACCOUNTS      0 to skip the login and refresh runs (default 1)
#   BENCH_LOGIN_CLIENTS concurrent logins, and argon2id goroutines (default 2)
#   BENCH_REFRESH_DURATION  length of the refresh run          (default 60s)
#   BENCH_REFRESH_CLIENTS   concurrent refreshing sessions      (default 8)
#   BENCH_OUT           if set, a directory to keep raw JSON results and logs in
#   TESSERA_BIN         use this tessera binary instead of building ./cmd/tessera
#   TESSERA_BENCH_POSTGRES_URL
#                       admin connection to PostgreSQL; the database
#                       tessera_bench is dropped and recreated through it.
#                       Default postgres://postgres@127.0.0.1:5432/test?sslmode=disable;
#                       set it to the empty string to skip PostgreSQL.
#
# Usage: scripts/bench.sh
#        BENCH_DURATION=1s BENCH_WARMUP=0 BENCH_REFRESH_DURATION=2s scripts/bench.sh   (a quick check)
#        BENCH_ROWS=1000000 scripts/bench.sh                                            (a 1 M-row database)
set -euo pipefail

DURATION=${BENCH_DURATION:-10s}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
WARMUP=${BENCH_WARMUP:-2s}
METHOD=${BENCH_METHOD:-email}
ROWS=${BENCH_ROWS:-0}
ACCOUNTS=${BENCH_ACCOUNTS:-1}
LOGIN_CLIENTS=${BENCH_LOGIN_CLIENTS:-2}
REFRESH_DURATION=${BENCH_REFRESH_DURATION:-60s}
REFRESH_CLIENTS=${BENCH_REFRESH_CLIENTS:-8}
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
		cp "$tmp"/*.json "$tmp"/*.log "$tmp"/*.tsv "$BENCH_OUT"/ 2>/dev/null || true
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
	printf '%s\tpairs\t%s\n' "$name" "${rss:-0}" >>"$tmp/results.tsv"
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
	local name=$1 data=$2 db=${3:-} url pid token
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
	token=$(env "${envs[@]}" "$bin" client create --init bench | tail -n 1)
	[[ -n $token ]] || die "$name: tessera client create printed no token"

	# `client create` applied the migrations: the tables are there.
	[[ $ROWS == 0 ]] || prefill "$name" "$data" "$db"

	start_server "$name"
	local sampler=
	if [[ -z $db ]]; then
		wal_sampler "$data/tessera.db-wal" "$tmp/$name.walpeak" &
		sampler=$!
		pids+=("$sampler")
	fi
	load "$name" "$url" "$pid" "$token"
	if [[ -n $sampler ]]; then
		stop "$sampler"
		printf '%s\t%s\t%s\n' "$name" "$(stat -c %s "$data/tessera.db-wal" 2>/dev/null || echo 0)" \
			"$(cat "$tmp/$name.walpeak" 2>/dev/null || echo 0)" >>"$tmp/wal.tsv"
	fi
	stop "$pid"
}

# start_server NAME: starts `tessera serve` with the caller's envs and
# waits until it is healthy; sets the caller's url and pid.
start_server() {
	local name=$1 port
	port=$(free_port)
	url=http://127.0.0.1:$port
	log "$name: starting tessera serve on $url"
	# The log sender writes a line per message to stderr: keep it in a file,
	# out of the terminal but available if the server fails.
	env "${envs[@]}" TESSERA_ADDR="127.0.0.1:$port" "$bin" serve >>"$tmp/$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait_healthy "$url" "$pid" "$tmp/$name.log"
}

# wal_sampler FILE OUT: writes the largest size FILE reaches to OUT, until
# killed.
wal_sampler() {
	local file=$1 out=$2 peak=0 size
	while :; do
		size=$(stat -c %s "$file" 2>/dev/null || echo 0)
		if ((size > peak)); then
			peak=$size
			echo "$peak" >"$out"
		fi
		sleep 0.2
	done
}

# prefill NAME DATA_DIR [DATABASE_URL]: stores $ROWS unexpired
# verifications of another API client by direct SQL, so the run meets a
# large database (its indexes, its cache misses) without spending the run
# on filling it.
prefill() {
	local name=$1 data=$2 db=${3:-} now
	now=$(($(date +%s) * 1000))
	log "$name: storing $ROWS verifications"
	if [[ -z $db ]]; then
		python3 - "$data/tessera.db" "$ROWS" "$now" <<-'PY'
			import sqlite3, sys
			path, rows, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
			c = sqlite3.connect(path, isolation_level=None)
			c.execute("PRAGMA journal_mode=WAL")
			c.execute("BEGIN")
			c.execute("""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			  INSERT INTO verifications (owner, id, method, consumer, issuer, code_hash, attempts, max_attempts, payload, created_at, expires_at)
			  SELECT 'bench-prefill', printf('%08x-0000-4000-8000-%012x', i, i), 'email', 'user' || i || '@example.com', 'Bench',
			         randomblob(32), 0, 5, NULL, ?, ? FROM n""", (rows, now, now + 86400000))
			c.execute("COMMIT")
			c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
		PY
	else
		psql "$db" -q -v ON_ERROR_STOP=1 -c "INSERT INTO verifications
			(owner, id, method, consumer, issuer, code_hash, attempts, max_attempts, payload, created_at, expires_at)
			SELECT 'bench-prefill', lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'), 'email',
			       'user' || i || '@example.com', 'Bench', decode(md5(i::text), 'hex'), 0, 5, NULL, $now, $now + 86400000
			FROM generate_series(1, $ROWS) AS i" >/dev/null
		psql "$db" -q -c "ANALYZE verifications" >/dev/null
	fi
}

# ops NAME KIND ARGS...: runs `tessera bench ARGS -json` into $tmp/NAME.json
# and records it, with the peak RSS of the server $pid when one runs.
ops() {
	local name=$1 kind=$2 p rss=0
	shift 2
	TESSERA_BENCH_PASSWORD=$bench_password "$bin" bench "$@" -json >"$tmp/$name.json" &
	p=$!
	pids+=("$p")
	wait "$p"
	forget "$p"
	[[ -z $pid ]] || rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	printf '%s\t%s\t%s\n' "$name" "$kind" "${rss:-0}" >>"$tmp/results.tsv"
	python3 - "$tmp/$name.json" <<-'PY' >&2
		import json, sys
		r = json.load(open(sys.argv[1]))
		print(f"   {r['ops_per_sec']:.1f}/s (first window {r['first_window_per_sec']:.1f}/s, "
		      f"last {r['last_window_per_sec']:.1f}/s), p99 {r['p99_ms']:.2f}ms, {r['errors']} errors")
		for e in r["error_samples"]:
		    print(f"   {e['count']} x {e['message']}")
	PY
}

# accounts DATA_DIR: the raw argon2id rate, then logins and refreshes
# against a fresh SQLite server, so its peak RSS is the logins' own.
accounts() {
	local data=$1 url pid=
	local envs=(TESSERA_DATA_DIR="$data" TESSERA_LIMIT_IP=off TESSERA_NEW_DEVICE_NOTICES=false)
	bench_password=$(head -c 18 /dev/urandom | base64)
	printf '%s\n' "$bench_password" | env "${envs[@]}" "$bin" user create bench-user@example.com >/dev/null
	log "argon2id: $LOGIN_CLIENTS goroutines, $DURATION"
	ops argon2id argon2 -mode argon2 -c "$LOGIN_CLIENTS" -d "$DURATION"
	start_server accounts
	log "logins: $LOGIN_CLIENTS clients, $DURATION"
	ops logins login -mode login -url "$url" -email bench-user@example.com -c "$LOGIN_CLIENTS" -d "$DURATION"
	log "refresh: $REFRESH_CLIENTS sessions, $REFRESH_DURATION"
	ops refresh refresh -mode refresh -url "$url" -email bench-user@example.com -c "$REFRESH_CLIENTS" -d "$REFRESH_DURATION"
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

# 4 and 5. Logins and refresh, on SQLite.
if [[ $ACCOUNTS != 0 ]]; then
	accounts "$tmp/sqlite-data"
fi

# Summary.
echo
python3 - "$tmp" "$DURATION" "$CONCURRENCY" "$METHOD" "$ROWS" "$REFRESH_DURATION" <<'EOF'
import json, os, platform, sys

tmp, duration, concurrency, method, rows, refresh_duration = sys.argv[1:7]
results = []
with open(os.path.join(tmp, "results.tsv")) as f:
    for line in f:
        name, kind, rss_kb = line.split()
        with open(os.path.join(tmp, name + ".json")) as j:
            results.append((name, kind, json.load(j), int(rss_kb)))
wal = {}
if os.path.exists(os.path.join(tmp, "wal.tsv")):
    with open(os.path.join(tmp, "wal.tsv")) as f:
        for line in f:
            name, end, peak = line.split()
            wal[name] = (int(end), int(peak))

cpu = platform.processor() or platform.machine()
try:
    with open("/proc/cpuinfo") as f:
        cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
except (OSError, StopIteration):
    pass
print(f"{os.cpu_count()} CPUs ({cpu}), {duration} per target, {concurrency} clients for pairs, method {method}, "
      f"{int(rows):,} verifications stored before, refresh run {refresh_duration}; load generator on the same machine")
print("ratio: pairs to the trivial handler's; logins to the raw argon2id rate; refresh, the last window's rate to the first's")
print("p50/p99: ms per request; WAL: SQLite's WAL file at the end of the pairs run / its peak\n")


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


by = {name: r for name, _, r, _ in results}
trivial = by.get("trivial", {}).get("pairs_per_sec", 0)
argon = by.get("argon2id", {}).get("ops_per_sec", 0)
table = [("target", "load", "per s", "p50", "p99", "errors", "peak RSS", "WAL end / peak", "ratio")]
for name, kind, r, rss in results:
    rss_s = f"{rss / 1024:.0f} MiB" if rss else "-"
    w = f"{mib(wal[name][0])} / {mib(wal[name][1])}" if name in wal else "-"
    if kind == "pairs":
        table.append((name, "initiate + validate pairs", f"{r['pairs_per_sec']:.0f}", f"{r['request_p50_ms']:.2f}",
                      f"{r['request_p99_ms']:.2f}", str(r["errors"]), rss_s, w,
                      f"{r['pairs_per_sec'] / trivial:.3f}" if trivial else "-"))
        continue
    load = {"argon2": f"raw argon2id, {r['concurrency']} goroutines",
            "login": f"password logins, {r['concurrency']} clients",
            "refresh": f"refresh rotations, {r['concurrency']} sessions"}[kind]
    ratio = "-"
    if kind == "login" and argon:
        ratio = f"{r['ops_per_sec'] / argon:.3f}"
    if kind == "refresh" and r["first_window_per_sec"]:
        ratio = f"{r['last_window_per_sec'] / r['first_window_per_sec']:.3f}"
    per_s = f"{r['ops_per_sec']:.1f}"
    if kind == "refresh":
        per_s = f"{r['ops_per_sec']:.0f} (first {r['first_window_per_sec']:.0f}, last {r['last_window_per_sec']:.0f})"
    table.append(("sqlite" if kind != "argon2" else "-", load, per_s, f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                  str(r["errors"]), rss_s if kind == "login" else "-", "-", ratio))
widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]


def fmt(row):
    cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
    return "| " + " | ".join(cells) + " |"


print(fmt(table[0]))
print("|" + "|".join("-" * (w + 1) + (":" if i >= 2 else "-") for i, w in enumerate(widths)) + "|")
for row in table[1:]:
    print(fmt(row))
EOF
