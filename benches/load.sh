#!/usr/bin/env bash
# benches/load.sh: the load benchmark of the release server, end to end.
#
#   benches/load.sh [sqlite|postgres|all]      (default: all)
#
# For each database it starts the release `webhook2fedmsg serve` in a
# temporary directory (SQLite there, or a fresh PostgreSQL database), with
# RabbitMQ and a unique topic prefix, creates a GitHub token with
# `webhook2fedmsg token add`, and drives signed 7.7 KB pushes
# (fixtures/github/push.new-branch.json, each with its own delivery id and
# `after`) from the `webhook2fedmsg-load` generator on loopback:
#
#   (a) closed-loop: LOAD_CONNECTIONS (64) connections for LOAD_DURATION (10) s;
#   (b) open-loop: LOAD_RATE (1000) pushes/s for LOAD_DURATION s.
#
# After each phase it waits for the outbox to empty. `count-published` binds
# a queue to "<prefix>.#" before the load and reads it empty at the end, so
# the script can check published == accepted. The server's peak RSS is its
# VmHWM. A summary table goes to stdout; each run's JSON, server log and
# config stay in target/load/<date>-<database>/.
#
# Other knobs: LOAD_REQUESTS (pushes pre-signed for the closed loop, 150000),
# LOAD_DB_CONNECTIONS (the server's database.max_connections, default 4, as
# the server's own default),
# LOAD_LOG (the server's log filter, default info), RUST_LOG is ignored.
#
# RabbitMQ and PostgreSQL are started, with the commands scripts/setup
# uses, only when their ports do not answer, and stopped at the end only if
# this script started them. Everything else it started (server, counter) it
# stops too. Every wait is bounded. It sends traffic to 127.0.0.1 only.
# Benchmarks are not tests: nothing in scripts/test or .ci/run calls this.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
which=${1:-all}
duration=${LOAD_DURATION:-10}
connections=${LOAD_CONNECTIONS:-64}
rate=${LOAD_RATE:-1000}
requests=${LOAD_REQUESTS:-150000}
db_connections=${LOAD_DB_CONNECTIONS:-4}
log_filter=${LOAD_LOG:-info}
pg_url_base=postgres://webhook2fedmsg:webhook2fedmsg@127.0.0.1:5432
amqp_url='amqp://guest:guest@127.0.0.1:5672/%2f'
bin=$root/target/release

say() { printf 'load: %s\n' "$*" >&2; }
die() {
    printf 'load: error: %s\n' "$*" >&2
    exit 1
}

case $which in
sqlite | postgres) backends=("$which") ;;
all) backends=(sqlite postgres) ;;
*) die "usage: benches/load.sh [sqlite|postgres|all]" ;;
esac
for tool in curl jq psql; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed (apt-get install $tool)"
done

work=$(mktemp -d /tmp/w2f-load.XXXXXX)
results=$root/target/load
pids=()
started_rabbitmq=no
started_postgres=no
pg_version=
databases=()

# Stops what this script started, newest first, and nothing else.
cleanup() {
    local pid db
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for db in "${databases[@]}"; do
        psql_admin -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
    if [ "$started_rabbitmq" = yes ]; then
        say "stopping the RabbitMQ this script started"
        rabbitmqctl stop >/dev/null 2>&1 || true
    fi
    if [ "$started_postgres" = yes ]; then
        say "stopping the PostgreSQL this script started"
        pg_ctlcluster --skip-systemctl-redirect "$pg_version" main stop || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

psql_admin() {
    PGPASSWORD=webhook2fedmsg PGCONNECT_TIMEOUT=5 psql -X -w -q -t -A \
        -h 127.0.0.1 -p 5432 -U webhook2fedmsg -d postgres "$@"
}

ensure_rabbitmq() {
    port_open 5672 && return
    command -v rabbitmq-server >/dev/null 2>&1 || die "RabbitMQ is not installed: run scripts/setup"
    say "starting RabbitMQ"
    rabbitmq-server -detached
    started_rabbitmq=yes
    local deadline=$((SECONDS + 90))
    until timeout 30 rabbitmqctl await_startup >/dev/null 2>&1 && port_open 5672; do
        [ "$SECONDS" -lt "$deadline" ] || die "RabbitMQ did not start within 90 s"
        sleep 2
    done
}

ensure_postgres() {
    if ! port_open 5432; then
        pg_version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null |
            sort -V | tail -n 1)
        [ -n "$pg_version" ] || die "PostgreSQL is not installed: run scripts/setup"
        say "starting PostgreSQL $pg_version"
        pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
        started_postgres=yes
        local waited=0
        until port_open 5432; do
            [ "$waited" -lt 30 ] || die "PostgreSQL did not answer within 30 s"
            sleep 1
            waited=$((waited + 1))
        done
    fi
    psql_admin -c 'SELECT 1' >/dev/null ||
        die "cannot log in to PostgreSQL as webhook2fedmsg: run scripts/setup"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Prints one metric's value from the server's /metrics (0 when absent).
metric() {
    curl -fsS --max-time 5 "http://$listen/metrics" |
        awk -v name="$1" '$1 == name { print $2; found = 1 } END { if (!found) print 0 }'
}

# Waits until the outbox is empty and the published counter has reached
# <accepted>; sets $drained to the seconds it took.
wait_drained() {
    local accepted=$1 start=$SECONDS depth published
    while :; do
        depth=$(metric webhook2fedmsg_outbox_depth)
        published=$(metric webhook2fedmsg_messages_published_total)
        if [ "$depth" = 0 ] && [ "${published%.*}" -ge "$accepted" ]; then
            break
        fi
        [ $((SECONDS - start)) -lt 600 ] ||
            die "outbox not drained after 600 s (depth $depth, published $published)"
        sleep 0.5
    done
    drained=$((SECONDS - start))
}

# Runs both phases against one database; sets $summary to the JSON file of
# its results. (Not in a subshell: the cleanup must see every pid.)
run_backend() {
    local backend=$1
    local dir=$work/$backend out database_url prefix secret port
    out=$results/$(date -u +%Y%m%dT%H%M%SZ)-$backend
    mkdir -p "$dir" "$out"
    port=$(free_port)
    listen=127.0.0.1:$port
    prefix=w2f-load.$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
    secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    case $backend in
    sqlite) database_url=sqlite://$dir/webhook2fedmsg.db ;;
    postgres)
        local db=w2f_load_${prefix#w2f-load.}
        psql_admin -c "CREATE DATABASE $db" >/dev/null
        databases+=("$db")
        database_url=$pg_url_base/$db
        ;;
    esac
    cat >"$dir/config.toml" <<EOF
listen = "$listen"
[database]
url = "$database_url"
max_connections = $db_connections
[amqp]
url = "$amqp_url"
topic_prefix = "$prefix"
[secrets]
key = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[log]
filter = "$log_filter"
EOF
    cp "$dir/config.toml" "$out/config.toml"

    local hook
    hook=$(cd "$dir" && env -u RUST_LOG "$bin/webhook2fedmsg" token add --config config.toml \
        --user load --service github --secret "$secret" | jq -r .hook_url)

    "$bin/count-published" --prefix "$prefix" >"$dir/count.out" 2>"$out/count.log" &
    local counter=$!
    pids+=("$counter")
    local waited=0
    until grep -q '^ready$' "$dir/count.out" 2>/dev/null; do
        [ "$waited" -lt 100 ] || die "count-published did not bind its queue within 10 s"
        sleep 0.1
        waited=$((waited + 1))
    done

    (cd "$dir" && exec env -u RUST_LOG "$bin/webhook2fedmsg" serve --config config.toml) \
        2>"$out/server.log" &
    local server=$!
    pids+=("$server")
    waited=0
    until curl -fsS --max-time 2 "http://$listen/healthz" >/dev/null 2>&1; do
        [ "$waited" -lt 100 ] || die "the server did not answer within 10 s; see $out/server.log"
        sleep 0.1
        waited=$((waited + 1))
    done
    say "$backend: server pid $server on $listen, topic prefix $prefix"

    say "$backend: (a) closed-loop, $connections connections, ${duration} s"
    LOAD_SECRET=$secret "$bin/webhook2fedmsg-load" --url "$hook" --fixture "$root/fixtures/github/push.new-branch.json" \
        --connections "$connections" --duration "$duration" --requests "$requests" \
        >"$out/closed.json"
    local closed_accepted drain_closed
    closed_accepted=$(jq .accepted "$out/closed.json")
    wait_drained "$closed_accepted"
    drain_closed=$drained

    say "$backend: (b) open-loop, $rate/s, ${duration} s"
    LOAD_SECRET=$secret "$bin/webhook2fedmsg-load" --url "$hook" --fixture "$root/fixtures/github/push.new-branch.json" \
        --connections "$connections" --duration "$duration" --rate "$rate" \
        >"$out/open.json"
    local accepted drain_open
    accepted=$((closed_accepted + $(jq .accepted "$out/open.json")))
    wait_drained "$accepted"
    drain_open=$drained

    local hwm
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status")
    kill -TERM "$counter"
    wait "$counter" || true
    grep -v '^ready$' "$dir/count.out" >"$out/published.json"
    kill -TERM "$server"
    wait "$server" || true

    jq -n --arg backend "$backend" --argjson hwm "$hwm" --argjson accepted "$accepted" \
        --argjson drain_closed "$drain_closed" --argjson drain_open "$drain_open" \
        --slurpfile closed "$out/closed.json" --slurpfile open "$out/open.json" \
        --slurpfile published "$out/published.json" '{
            backend: $backend, accepted: $accepted,
            published: $published[0].distinct_ids, received: $published[0].messages,
            peak_rss_mb: ($hwm / 1024 | . * 10 | round / 10),
            closed: $closed[0], open: $open[0],
            drain_s: {closed: $drain_closed, open: $drain_open}
        }' >"$out/summary.json"
    summary=$out/summary.json
}

summarise() {
    printf '\n%-9s %-26s %10s %9s %9s %9s %9s %9s\n' database phase accepted/s \
        p50_ms p90_ms p99_ms max_ms errors
    local file
    for file in "$@"; do
        jq -r '
            def row($name; $r): [.backend, $name, $r.accepted_per_s, $r.latency_ms.p50,
                $r.latency_ms.p90, $r.latency_ms.p99, $r.latency_ms.max,
                (($r.answered - $r.accepted) + $r.errors)];
            row("closed \(.closed.connections) conns"; .closed),
            row("open \(.open.target_rate)/s"; .open) | @tsv' "$file" |
            while IFS=$'\t' read -r db phase per_s p50 p90 p99 max errors; do
                printf '%-9s %-26s %10s %9s %9s %9s %9s %9s\n' "$db" "$phase" "$per_s" \
                    "$p50" "$p90" "$p99" "$max" "$errors"
            done
    done
    printf '\n%-9s %10s %10s %10s %12s %14s\n' database accepted published received \
        peak_rss_mb "published==accepted"
    for file in "$@"; do
        jq -r '[.backend, .accepted, .published, .received, .peak_rss_mb,
            (if .published == .accepted and .received == .accepted then "yes" else "NO" end)]
            | @tsv' "$file" |
            while IFS=$'\t' read -r db accepted published received rss ok; do
                printf '%-9s %10s %10s %10s %12s %14s\n' "$db" "$accepted" "$published" \
                    "$received" "$rss" "$ok"
            done
    done
}

main() {
    say "building the release binaries"
    (cd "$root" && cargo build --release --quiet -p webhook2fedmsg-server -p webhook2fedmsg-load)
    ensure_rabbitmq
    local summaries=() backend ok=yes
    for backend in "${backends[@]}"; do
        [ "$backend" = postgres ] && ensure_postgres
        run_backend "$backend"
        summaries+=("$summary")
    done
    summarise "${summaries[@]}"
    for file in "${summaries[@]}"; do
        jq -e '.published == .accepted and .received == .accepted' "$file" >/dev/null || ok=no
    done
    [ "$ok" = yes ] || die "published != accepted: see the summaries in $results"
}

main
