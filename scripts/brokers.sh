#!/usr/bin/env bash
# Start, stop and inspect the local brokers for development, tests and
# benchmarks: Apache Kafka, RabbitMQ and an SQS-compatible server (ElasticMQ),
# all listening on 127.0.0.1 only. State, logs, pid files and downloaded jars
# live under .brokers/ at the repository top. See scripts/BROKERS.md.
#
# Usage: scripts/brokers.sh COMMAND [kafka|rabbitmq|sqs ...]   (no names = all three)
#   up          start the brokers that are not running and wait until each
#               serves requests; a broker that already runs is left alone
#   down        stop the brokers (SIGTERM, then SIGKILL after 30 s)
#   restart     down, then up
#   status      print state and readiness; exits 3 unless all named are ready
#   fetch       download the jars of kafka and sqs into .brokers/ (up does it
#               when they are missing; rabbitmq has nothing to fetch)
#   kafka-run CLASS [ARGS...]   run a Java class from the Kafka jars, for
#               example org.apache.kafka.tools.ProducerPerformance
#   rabbitmqctl [ARGS...]       run rabbitmqctl against the local node
#
# Environment:
#   BROKERS_START_TIMEOUT  seconds that up waits for a broker to serve requests (default 120)
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPTS_DIR/.." && pwd)"
STATE_DIR="$ROOT/.brokers"
ALL_BROKERS=(kafka rabbitmq sqs)

HOST=127.0.0.1
START_TIMEOUT="${BROKERS_START_TIMEOUT:-120}"
STOP_TIMEOUT=30

# File descriptor of the per-broker lock that the running command holds. The
# brokers it launches must not inherit it, or the lock would outlive the command.
LOCK_FD=

log() {
    printf '%s\n' "$*"
}

die() {
    printf 'brokers.sh: %s\n' "$*" >&2
    exit 1
}

now_ms() {
    date +%s%3N
}

# Print the seconds since a now_ms timestamp, with one decimal.
seconds_since() {
    awk -v start="$1" -v end="$(now_ms)" 'BEGIN { printf "%.1f s", (end - start) / 1000 }'
}

# Print a path relative to the repository top, for shorter messages.
short_path() {
    printf '%s' "${1#"$ROOT"/}"
}

# Succeed when process PID exists and is not a zombie.
process_alive() {
    local line fields
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    read -r -a fields <<<"${line##*) }"
    [[ ${fields[0]} != Z ]]
}

# Succeed when any process of process group PGID exists and is not a zombie.
group_alive() {
    local pgid=$1 file line fields
    for file in /proc/[0-9]*/stat; do
        { read -r line <"$file"; } 2>/dev/null || continue
        read -r -a fields <<<"${line##*) }"
        if [[ ${fields[2]} == "$pgid" && ${fields[0]} != Z ]]; then
            return 0
        fi
    done
    return 1
}

# Succeed when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

probe() {
    python3 "$SCRIPTS_DIR/broker_probe.py" "$@"
}

# Print the pid recorded for a broker and succeed when that process is alive
# and belongs to this checkout: its command line or environment names the
# broker's state folder, which guards against a recycled pid.
running_pid() {
    local name=$1 pid_file="$STATE_DIR/$1/pid" pid
    [[ -f $pid_file ]] || return 1
    pid=$(<"$pid_file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    process_alive "$pid" || return 1
    local identity
    identity=$(cat "/proc/$pid/cmdline" "/proc/$pid/environ" 2>/dev/null | tr '\0' '\n') || return 1
    [[ $identity == *"$STATE_DIR/$name/"* ]] || return 1
    printf '%s' "$pid"
}

# Run a command while holding the broker's lock, so that two developers running
# up or down at the same time do not start a broker twice.
with_lock() {
    local name=$1
    shift
    mkdir -p "$STATE_DIR/$name"
    exec {LOCK_FD}>"$STATE_DIR/$name/lock"
    flock -w $((START_TIMEOUT + STOP_TIMEOUT + 60)) "$LOCK_FD" ||
        die "$name: timed out waiting for $(short_path "$STATE_DIR/$name/lock"), held by another brokers.sh"
    "$@"
    exec {LOCK_FD}>&-
    LOCK_FD=
}

# Start a broker's command in its own session, detached from this shell, with
# output appended to LOG_FILE, and record its pid in .brokers/NAME/pid. The pid
# is also the process group id, which stop_locked signals.
launch_detached() {
    local name=$1 log_file=$2
    shift 2
    setsid "$@" </dev/null >>"$log_file" 2>&1 {LOCK_FD}>&- &
    printf '%s\n' "$!" >"$STATE_DIR/$name/pid"
}

# Print the last lines of each log file that exists, to stderr.
show_log_tails() {
    local file
    for file in "$@"; do
        [[ -s $file ]] || continue
        printf '\n--- last 40 lines of %s ---\n' "$(short_path "$file")" >&2
        tail -n 40 "$file" >&2
    done
}

# Ensure Maven is present, then copy the jars that scripts/NAME/pom.xml lists
# into .brokers/NAME/libs. Skipped when libs already contains the jars of the same pom.xml.
fetch_jars() {
    local name=$1
    local pom="$SCRIPTS_DIR/$name/pom.xml" libs="$STATE_DIR/$name/libs"
    local digest stamp="$libs/.pom-sha256"
    digest=$(sha256sum "$pom" | cut -d' ' -f1)
    if [[ -f $stamp && $(<"$stamp") == "$digest" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "$name: mvn not found, needed once to fetch the jars: run scripts/install-brokers.sh as root"
    log "$name: fetching jars listed in $(short_path "$pom") from Maven Central into $(short_path "$libs")"
    local started partial="$libs.partial"
    started=$(now_ms)
    rm -rf "$partial"
    if ! mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$partial"; then
        rm -rf "$partial"
        die "$name: mvn dependency:copy-dependencies failed on $(short_path "$pom"), see the Maven output above"
    fi
    printf '%s\n' "$digest" >"$partial/.pom-sha256"
    rm -rf "$libs"
    mv "$partial" "$libs"
    log "$name: fetched $(find "$libs" -name '*.jar' | wc -l) jars in $(seconds_since "$started")"
}

# Print the version part of the one jar in LIBS whose name starts with PREFIX.
jar_version() {
    local libs=$1 prefix=$2 jar
    for jar in "$libs/$prefix"-*.jar; do
        [[ -f $jar ]] || continue
        jar=${jar##*/}
        jar=${jar#"$prefix"-}
        printf '%s' "${jar%.jar}"
        return 0
    done
    printf 'unknown'
}

# ---------------------------------------------------------------- Kafka
# A single KRaft node that is both broker and controller, run from the jars of
# org.apache.kafka:kafka_2.13 and kafka-tools (scripts/kafka/pom.xml) on the
# machine's Java 17.

KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
# Any fixed base64url UUID works. This one encodes the 16 bytes "CelloMessaging10".
KAFKA_CLUSTER_ID=Q2VsbG9NZXNzYWdpbmcxMA
KAFKA_DIR="$STATE_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_LOG="$KAFKA_DIR/kafka.log"

kafka_ports() {
    echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT"
}

kafka_logs() {
    echo "$KAFKA_LOG"
}

kafka_description() {
    printf 'Apache Kafka %s (KRaft broker+controller) on %s:%s' \
        "$(jar_version "$KAFKA_LIBS" kafka_2.13)" "$HOST" "$KAFKA_PORT"
}

kafka_write_config() {
    mkdir -p "$KAFKA_DIR/data"
    cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by scripts/brokers.sh on each start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
    # The broker logs to standard output, which launch_detached appends to kafka.log.
    cat >"$KAFKA_DIR/log4j2.properties" <<'EOF'
# Written by scripts/brokers.sh on each start; edit the script, not this file.
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
EOF
    # Command-line tools run through kafka-run print warnings and errors only.
    cat >"$KAFKA_DIR/tools-log4j2.properties" <<'EOF'
# Written by scripts/brokers.sh on each start; edit the script, not this file.
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
}

# Format the log folder with the fixed cluster id, once: KRaft refuses to start
# on a folder without meta.properties.
kafka_format_storage() {
    [[ -f $KAFKA_DIR/data/meta.properties ]] && return 0
    log "kafka: formatting $(short_path "$KAFKA_DIR/data") with cluster id $KAFKA_CLUSTER_ID"
    if ! java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" \
        kafka.tools.StorageTool format --cluster-id "$KAFKA_CLUSTER_ID" \
        --config "$KAFKA_DIR/server.properties" >>"$KAFKA_LOG" 2>&1; then
        show_log_tails "$KAFKA_LOG"
        die "kafka: kafka.tools.StorageTool format failed on $(short_path "$KAFKA_DIR/data")"
    fi
}

kafka_launch() {
    kafka_write_config
    kafka_format_storage
    launch_detached kafka "$KAFKA_LOG" \
        java -Xms256m -Xmx1G -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties"
}

kafka_probe() {
    probe kafka "$HOST" "$KAFKA_PORT"
}

kafka_after_stop() {
    :
}

kafka_run() {
    [[ $# -ge 1 ]] || die "kafka-run: missing CLASS, for example org.apache.kafka.tools.TopicCommand"
    fetch_jars kafka
    [[ -f $KAFKA_DIR/tools-log4j2.properties ]] || kafka_write_config
    exec java -Xmx512m -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" \
        -cp "$KAFKA_LIBS/*" "$@"
}

# ---------------------------------------------------------------- RabbitMQ
# Debian's rabbitmq-server, run through /usr/lib/rabbitmq/bin/rabbitmq-server.
# The /usr/sbin wrappers switch to the rabbitmq user, whose HOME contains another
# Erlang cookie, so rabbitmqctl run as root could not authenticate to the node.
# That script stays in front of the Erlang VM and turns SIGTERM into a clean
# stop. The VM starts epmd, which outlives it and is stopped apart.

RABBITMQ_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
RABBITMQ_CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
RABBITMQ_AMQP_PORT=5672
# Erlang distribution port, which rabbitmqctl talks to: the AMQP port + 20000.
RABBITMQ_DISTRIBUTION_PORT=25672
RABBITMQ_NODE=cello@localhost
RABBITMQ_DIR="$STATE_DIR/rabbitmq"
RABBITMQ_LAUNCH_LOG="$RABBITMQ_DIR/stdout.log"

rabbitmq_ports() {
    echo "$RABBITMQ_AMQP_PORT $RABBITMQ_DISTRIBUTION_PORT"
}

rabbitmq_logs() {
    echo "$RABBITMQ_LAUNCH_LOG $RABBITMQ_DIR/log/$RABBITMQ_NODE.log"
}

rabbitmq_description() {
    local version
    version=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown)
    printf 'RabbitMQ %s (node %s) on %s:%s' "$version" "$RABBITMQ_NODE" "$HOST" "$RABBITMQ_AMQP_PORT"
}

# Export the environment that both the server and rabbitmqctl need: the same
# HOME (for the Erlang cookie), node name and private folders.
rabbitmq_export_env() {
    local loopback_only='-kernel inet_dist_use_interface {127,0,0,1}'
    export HOME="$RABBITMQ_DIR/home"
    export RABBITMQ_NODENAME="$RABBITMQ_NODE"
    export RABBITMQ_MNESIA_BASE="$RABBITMQ_DIR/mnesia"
    export RABBITMQ_LOG_BASE="$RABBITMQ_DIR/log"
    export RABBITMQ_PID_FILE="$RABBITMQ_DIR/server.pid"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBITMQ_DIR/enabled_plugins"
    export RABBITMQ_CONFIG_FILE="$RABBITMQ_DIR/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$RABBITMQ_DIR/advanced.config"
    export RABBITMQ_CONF_ENV_FILE="$RABBITMQ_DIR/rabbitmq-env.conf"
    export RABBITMQ_NODE_IP_ADDRESS="$HOST"
    export RABBITMQ_NODE_PORT="$RABBITMQ_AMQP_PORT"
    export RABBITMQ_DIST_PORT="$RABBITMQ_DISTRIBUTION_PORT"
    export ERL_EPMD_ADDRESS="$HOST"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$loopback_only"
    export RABBITMQ_CTL_ERL_ARGS="$loopback_only"
}

rabbitmq_launch() {
    [[ -x $RABBITMQ_SERVER ]] || die "rabbitmq: $RABBITMQ_SERVER not found: run scripts/install-brokers.sh as root"
    mkdir -p "$RABBITMQ_DIR/home" "$RABBITMQ_DIR/mnesia" "$RABBITMQ_DIR/log"
    # No plugins: the management plugin would open another port.
    printf '[].\n' >"$RABBITMQ_DIR/enabled_plugins"
    # Empty on purpose, so that /etc/rabbitmq/rabbitmq-env.conf is not read.
    : >"$RABBITMQ_DIR/rabbitmq-env.conf"
    cat >"$RABBITMQ_DIR/rabbitmq.conf" <<'EOF'
# Written by scripts/brokers.sh on each start; edit the script, not this file.
# guest/guest may log in from loopback only, which is RabbitMQ's default.
loopback_users.guest = true
log.file.level = info
EOF
    (
        rabbitmq_export_env
        launch_detached rabbitmq "$RABBITMQ_LAUNCH_LOG" "$RABBITMQ_SERVER"
    )
}

rabbitmq_probe() {
    probe rabbitmq "$HOST" "$RABBITMQ_AMQP_PORT"
}

# The Erlang VM may survive its launcher if the launcher was killed. Print its
# pid, written by RabbitMQ itself, when it still runs.
rabbitmq_vm_pid() {
    local pid_file="$RABBITMQ_DIR/server.pid" pid
    [[ -f $pid_file ]] || return 1
    pid=$(<"$pid_file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    local command_line
    command_line=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $command_line == *"$RABBITMQ_DIR/"* ]] || return 1
    printf '%s' "$pid"
}

rabbitmq_after_stop() {
    local pid
    if pid=$(rabbitmq_vm_pid); then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$RABBITMQ_DIR/server.pid"
    # epmd refuses to stop while any other Erlang node is registered with it.
    ERL_EPMD_ADDRESS="$HOST" epmd -kill >/dev/null 2>&1 || true
}

rabbitmq_ctl() {
    rabbitmq_export_env
    exec "$RABBITMQ_CTL" "$@"
}

# ---------------------------------------------------------------- SQS
# ElasticMQ 1.7.1 (org.elasticmq:elasticmq-server_2.13, scripts/sqs/pom.xml),
# on the machine's Java 17. Queues and messages are kept in an H2 database
# under .brokers/sqs/data, so they survive down and up like Kafka's and
# RabbitMQ's. The H2 driver and ElasticMQ's SQL persistence come with the
# server's own dependencies.
#
# Chosen over moto's server mode by measurement. scripts/sqs/depth_bench.py
# sends 2,000 messages one SendMessage call at a time before receiving any.
# Then it receives them ten at a time and deletes each batch. Figures are from
# boto3 1.43.11 on a 2-core Debian 12 machine, server and client on loopback:
#   moto 5.2.1 (moto_server)  send 56.1 s, receive+delete 142.5 s, total 198.5 s
#   ElasticMQ 1.7.1           send  8.3 s, receive+delete   1.3 s, total   9.6 s
#   ElasticMQ 1.7.1, 20,000   send 31.0 s, receive+delete   7.7 s, total  38.7 s
# moto's time per message grows with queue depth, ElasticMQ's does not, and
# ElasticMQ passed a check of RedrivePolicy to a DLQ, ChangeMessageVisibility,
# String/Number/Binary message attributes and FIFO queues with deduplication.

SQS_PORT=4566
SQS_DIR="$STATE_DIR/sqs"
SQS_LIBS="$SQS_DIR/libs"
SQS_LOG="$SQS_DIR/elasticmq.log"
SQS_DATA="$SQS_DIR/data"

sqs_ports() {
    echo "$SQS_PORT"
}

sqs_logs() {
    echo "$SQS_LOG"
}

sqs_description() {
    printf 'ElasticMQ %s (SQS API) on %s:%s' "$(jar_version "$SQS_LIBS" elasticmq-server_2.13)" "$HOST" "$SQS_PORT"
}

sqs_launch() {
    mkdir -p "$SQS_DATA"
    # Queue URLs take node-address, so they read
    # http://localhost:4566/000000000000/<name>; the socket binds 127.0.0.1 only.
    cat >"$SQS_DIR/elasticmq.conf" <<EOF
# Written by scripts/brokers.sh on each start; edit the script, not this file.
include classpath("application.conf")

node-address {
  protocol = http
  host = localhost
  port = $SQS_PORT
  context-path = ""
}

rest-sqs {
  enabled = true
  bind-port = $SQS_PORT
  bind-hostname = "$HOST"
  sqs-limits = strict
}

generate-node-address = false

aws {
  region = us-east-1
  accountId = "000000000000"
}

# Every queue, its attributes and its messages, with their receive counts,
# are stored in H2 2.2.224 and loaded again on start. On SIGTERM, H2's own
# shutdown hook would close the database at once. ElasticMQ then goes on
# serving the requests in flight for up to 21 s, because a long poll waits
# 20 s, and it acknowledged sends in that time that it could no longer store.
# DB_CLOSE_ON_EXIT=FALSE keeps the database open until the process exits.
# WRITE_DELAY=0 writes each commit to the file at once instead of within
# 500 ms, so a process that exits or is killed without closing the database
# keeps what it acknowledged (checked with SIGKILL during a stream of sends).
# RETENTION_TIME=0 lets H2 reuse the space of replaced data at once: with
# its default of 45 s and a write per commit, 40,000 messages grew the file
# to 2.5 GB instead of 8 MB.
messages-storage {
  enabled = true
  driver-class = "org.h2.Driver"
  uri = "jdbc:h2:$SQS_DATA/elasticmq;DB_CLOSE_ON_EXIT=FALSE;WRITE_DELAY=0;RETENTION_TIME=0"
  username = ""
  password = ""
  prune-data-on-init = false
}
EOF
    launch_detached sqs "$SQS_LOG" \
        java -Xms64m -Xmx512m -Djava.awt.headless=true \
        -Dconfig.file="$SQS_DIR/elasticmq.conf" \
        -cp "$SQS_LIBS/*" org.elasticmq.server.Main
}

sqs_probe() {
    probe sqs "$HOST" "$SQS_PORT"
}

sqs_after_stop() {
    :
}

# ---------------------------------------------------------------- commands

# Stop a broker: SIGTERM, up to STOP_TIMEOUT seconds for its process group to
# exit, then SIGKILL to the group. Runs under the broker's lock.
stop_locked() {
    local name=$1 pid started
    if ! pid=$(running_pid "$name"); then
        "${name}_after_stop"
        rm -f "$STATE_DIR/$name/pid"
        log "$name: not running"
        return 0
    fi
    started=$(now_ms)
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while group_alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    local how="SIGTERM"
    if group_alive "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || true
        how="SIGKILL after ${STOP_TIMEOUT} s"
        deadline=$((SECONDS + 10))
        while group_alive "$pid"; do
            ((SECONDS < deadline)) || die "$name: process group $pid still runs 10 s after SIGKILL"
            sleep 0.1
        done
    fi
    "${name}_after_stop"
    rm -f "$STATE_DIR/$name/pid"
    log "$name: stopped pid $pid with $how in $(seconds_since "$started")"
}

# Start a broker unless it runs, then wait until its probe succeeds. Runs
# under the broker's lock.
start_locked() {
    local name=$1 pid started port
    if pid=$(running_pid "$name"); then
        # It may still be starting, under another command that has since ended.
        if "${name}_probe" >/dev/null 2>&1; then
            log "$name: already running, $("${name}_description"), pid $pid"
            return 0
        fi
        started=$(now_ms)
        wait_until_ready "$name" "$pid" "$started"
        log "$name: was starting, ready now: $("${name}_description"), pid $pid, waited $(seconds_since "$started")"
        return 0
    fi
    rm -f "$STATE_DIR/$name/pid"
    for port in $("${name}_ports"); do
        if port_in_use "$port"; then
            die "$name: $HOST:$port is already in use by a process that brokers.sh did not start from this checkout; find it with 'ss -ltnp' and stop it"
        fi
    done

    # Fetching jars is a one-time cost, kept out of the start time.
    [[ $name == rabbitmq ]] || fetch_jars "$name"

    local log_file logs=()
    for log_file in $("${name}_logs"); do
        [[ -f $log_file ]] && mv -f "$log_file" "$log_file.previous"
        logs+=("$(short_path "$log_file")")
    done
    started=$(now_ms)
    "${name}_launch"
    pid=$(<"$STATE_DIR/$name/pid")
    wait_until_ready "$name" "$pid" "$started"
    log "$name: started $("${name}_description") in $(seconds_since "$started"), pid $pid, log ${logs[*]}"
}

# Wait until the broker's probe succeeds. On exit of the process or after
# START_TIMEOUT seconds, stop what is left and fail with the log tails.
wait_until_ready() {
    local name=$1 pid=$2 started=$3
    local deadline=$((SECONDS + START_TIMEOUT)) reason=""
    while true; do
        if reason=$("${name}_probe" 2>&1); then
            return 0
        fi
        if ! process_alive "$pid"; then
            "${name}_after_stop"
            rm -f "$STATE_DIR/$name/pid"
            # shellcheck disable=SC2046
            show_log_tails $("${name}_logs")
            die "$name: the server exited $(seconds_since "$started") after launch without serving requests; see the log above"
        fi
        if ((SECONDS >= deadline)); then
            # shellcheck disable=SC2046
            show_log_tails $("${name}_logs")
            stop_locked "$name" >&2
            die "$name: not ready after ${START_TIMEOUT} s (last probe: $reason); raise BROKERS_START_TIMEOUT if this machine is slow"
        fi
        sleep 0.5
    done
}

# Print one status line per broker; fail when it is not ready.
status_of() {
    local name=$1 pid reason
    if ! pid=$(running_pid "$name"); then
        printf '%-9s stopped\n' "$name"
        return 1
    fi
    if reason=$("${name}_probe" 2>&1); then
        printf '%-9s ready     pid %-7s %s\n' "$name" "$pid" "$("${name}_description")"
        return 0
    fi
    printf '%-9s starting  pid %-7s %s\n' "$name" "$pid" "$reason"
    return 1
}

# Check the broker names given on the command line and store them in SELECTED,
# or all brokers when none is given.
SELECTED=()
select_brokers() {
    local name
    if [[ $# -eq 0 ]]; then
        SELECTED=("${ALL_BROKERS[@]}")
        return 0
    fi
    for name in "$@"; do
        case $name in
            kafka | rabbitmq | sqs) ;;
            *) die "unknown broker '$name': expected kafka, rabbitmq or sqs" ;;
        esac
    done
    SELECTED=("$@")
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
    [[ $# -ge 1 ]] || {
        usage >&2
        exit 2
    }
    local command=$1 name
    shift
    case $command in
        up | down | restart | status | fetch) select_brokers "$@" ;;
    esac
    case $command in
        up)
            for name in "${SELECTED[@]}"; do
                with_lock "$name" start_locked "$name"
            done
            ;;
        down)
            for name in "${SELECTED[@]}"; do
                with_lock "$name" stop_locked "$name"
            done
            ;;
        restart)
            for name in "${SELECTED[@]}"; do
                with_lock "$name" stop_locked "$name"
                with_lock "$name" start_locked "$name"
            done
            ;;
        status)
            local all_ready=0
            for name in "${SELECTED[@]}"; do
                status_of "$name" || all_ready=3
            done
            exit "$all_ready"
            ;;
        fetch)
            for name in "${SELECTED[@]}"; do
                [[ $name == rabbitmq ]] && continue
                with_lock "$name" fetch_jars "$name"
            done
            ;;
        kafka-run) kafka_run "$@" ;;
        rabbitmqctl) rabbitmq_ctl "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            die "unknown command '$command'"
            ;;
    esac
}

# exit on the same line: bash reads a script as it runs, so an edit to this
# file while it runs would otherwise be read as more commands.
main "$@"; exit
