#!/usr/bin/env bash
# Install what scripts/brokers.sh needs on Debian 12, as root, then download
# the Kafka and ElasticMQ jars into .brokers/ so that `brokers.sh up` needs no
# network afterwards. Safe to run again: it installs only what is missing and
# skips jars already fetched for the same scripts/*/pom.xml.
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
    printf 'install-brokers.sh: %s\n' "$*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root: it installs Debian packages with apt-get"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12 only"

# Debian packages that are missing, each added only when its command is absent.
packages=()
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || packages+=(rabbitmq-server)
command -v java >/dev/null || packages+=(default-jre-headless)
command -v mvn >/dev/null || packages+=(maven)
command -v curl >/dev/null || packages+=(curl)
command -v python3 >/dev/null || packages+=(python3)
command -v flock >/dev/null || packages+=(util-linux)

if ((${#packages[@]} > 0)); then
    echo "install-brokers.sh: installing ${packages[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
else
    echo "install-brokers.sh: rabbitmq-server, java, mvn, curl and python3 are already installed"
fi

# Kafka 4.x and ElasticMQ 1.7 need Java 17 or newer.
java_major=$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ { print $2 }')
[[ ${java_major%%.*} -ge 17 ]] || die "java on PATH is version $java_major, but Kafka 4.x needs Java 17 or newer: put a newer java first on PATH"

"$SCRIPTS_DIR/brokers.sh" fetch kafka sqs
